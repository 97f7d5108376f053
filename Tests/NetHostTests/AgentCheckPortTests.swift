import Foundation
import NetHostTestSupport
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore

/// The `agent_check` module on a real socket: what a connection to its port reads,
/// from the server's real limiter, its leaving flag and a real state file. The
/// reply itself is specified in `AgentCheckReplyTests`; HAProxy reading it, in the
/// end-to-end `InteropAgentCheckTests`.
@Suite("Agent check port", .serialized)
struct AgentCheckPortTests {
    static func options(stateFile: String? = nil) -> [String: ConfigValue] {
        var options: [String: ConfigValue] = [
            "modules_enabled": .strings("agent_check", "demo_echo_swift"),
            "agent_check_ports": .list(.integer(0)), "agent_check_interfaces": .strings("127.0.0.1"),
            "demo_echo_swift_ports": .list(.integer(0)),
            "network_settings": .table(ConfigTable(map: [.string("max_connections"): .integer(10)])),
        ]
        if let stateFile { options["agent_check_state_file"] = .string(stateFile) }
        return options
    }

    /// One agent check: connect, read everything until the agent closes.
    static func ask(_ fixture: HostFixture, sending request: String? = nil) throws -> String {
        let client = try fixture.connect(to: "agent_check")
        defer { client.close() }
        if let request { try client.send(request) }
        return String(decoding: try client.readToEnd(), as: UTF8.self)
    }

    @Test("answers one line and closes; the weight falls as connections open and rises as they close")
    func weightFollowsOpenConnections() async throws {
        try await HostFixture.running(modules: [:], options: Self.options()) { fixture in
            #expect(try Self.ask(fixture) == "up ready 100%\n")
            var held: [TestClient] = []
            for _ in 0 ..< 5 {
                let client = try fixture.connect(to: "demo_echo_swift")
                try client.send("hi\n")
                #expect(try client.readLine() == "hi")
                held.append(client)
            }
            // 5 of max_connections 10 open (the checks' own connections are not counted).
            #expect(try Self.ask(fixture) == "up ready 50%\n")
            for client in held.prefix(4) { client.close() }
            var last = ""
            #expect(await fixture.waitUntil {
                last = (try? Self.ask(fixture)) ?? "failed"
                return last == "up ready 90%\n"
            }, "last answer \(last.debugDescription)")
            // HAProxy's agent-send: what the peer sends is read and dropped.
            #expect(try Self.ask(fixture, sending: "backend-name server-1\n") == "up ready 90%\n")
            withExtendedLifetime(held) {}
        }
    }

    @Test("at max_connections the check still gets through and answers 0%, however many checks ran just before")
    func answersWhenFull() async throws {
        try await HostFixture.running(modules: [:], options: Self.options()) { fixture in
            var held: [TestClient] = []
            for _ in 0 ..< 10 {
                let client = try fixture.connect(to: "demo_echo_swift")
                try client.send("hi\n")
                #expect(try client.readLine() == "hi")
                held.append(client)
            }
            // Back to back: a check whose connection the server is still closing
            // is no part of the load the next one reports.
            for _ in 0 ..< 5 {
                #expect(try Self.ask(fixture) == "up ready 0%\n")
            }
            withExtendedLifetime(held) {}
        }
    }

    @Test("while the server is leaving it answers drain, and the log says so once")
    func leavingAnswersDrain() async throws {
        try await HostFixture.running(modules: [:], options: Self.options()) { fixture in
            #expect(try Self.ask(fixture) == "up ready 100%\n")
            let server = try #require(fixture.server)
            _ = server.status.beginLeaving()
            #expect(try Self.ask(fixture) == "drain\n")
            #expect(try Self.ask(fixture) == "drain\n")
            let changes = fixture.logs.all.filter { $0.contains("agent check now answers drain (leaving; was up)") }
            #expect(changes.count == 1, "\(fixture.logs.all)")
        }
    }

    @Test("an operator's state file takes over while it exists; removing it brings the instance back")
    func stateFile() async throws {
        let folder = NSTemporaryDirectory() + "nethost-agent-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/agent-state"
        try await HostFixture.running(modules: [:], options: Self.options(stateFile: path)) { fixture in
            #expect(try Self.ask(fixture) == "up ready 100%\n")
            try "down database migration\n".write(toFile: path, atomically: true, encoding: .utf8)
            #expect(try Self.ask(fixture) == "down #database migration\n")
            try "drain\n".write(toFile: path, atomically: true, encoding: .utf8)
            #expect(try Self.ask(fixture) == "drain\n")
            _ = FileManager.default.createFile(atPath: path, contents: Data())
            #expect(try Self.ask(fixture) == "maint\n")
            try "mantenance\n".write(toFile: path, atomically: true, encoding: .utf8)
            #expect(try Self.ask(fixture) == "maint\n")
            #expect(fixture.logs.contains("is taken as maint: its first word 'mantenance' is none of maint, down, drain, up"))
            try FileManager.default.removeItem(atPath: path)
            #expect(try Self.ask(fixture) == "up ready 100%\n")
        }
    }

    @Test("a graceful stop is given the module's notice; without the module there is none")
    func drainTimeBecomesTheNotice() async throws {
        var options = Self.options()
        options["agent_check_drain_time"] = .number(1.5)
        try await HostFixture.running(modules: [:], options: options) { fixture in
            let server = try #require(fixture.server)
            #expect(server.status.leavingNotice == .milliseconds(1500))
        }
        let without = try HostFixture(modules: [:])
        let server = try await without.start(options: ["modules_enabled": .strings("demo_echo_swift"), "demo_echo_swift_ports": .list(.integer(0))])
        #expect(server.status.leavingNotice == .zero, "without the agent check nobody is told, so nothing waits")
        await without.stop()
    }

    @Test("a reload applies a new state file and a new notice")
    func reloadAppliesOptions() async throws {
        let folder = NSTemporaryDirectory() + "nethost-agent-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/agent-state"
        try "maint\n".write(toFile: path, atomically: true, encoding: .utf8)
        try await HostFixture.running(modules: [:], options: Self.options()) { fixture in
            let server = try #require(fixture.server)
            #expect(try Self.ask(fixture) == "up ready 100%\n")
            var options = Self.options(stateFile: path)
            options["agent_check_drain_time"] = .integer(7)
            try await server.reload(HostFixture.options(options))
            #expect(try Self.ask(fixture) == "maint\n")
            #expect(server.status.leavingNotice == .seconds(7))
        }
    }

    @Test("options it cannot use are problems, said in words", arguments: [
        ("agent_check_state_file", ConfigValue.string("relative/path"), "agent_check_state_file must be an absolute path"),
        ("agent_check_drain_time", ConfigValue.number(-1), "agent_check_drain_time must be a number of seconds from 0 to 3600"),
    ])
    func badOptions(name: String, value: ConfigValue, problem: String) async throws {
        var options = Self.options()
        options[name] = value
        try await HostFixture.running(modules: [:], options: options) { fixture in
            #expect(fixture.logs.contains(problem), "\(fixture.logs.all)")
            let answer = try Self.ask(fixture)
            #expect(answer == "up ready 100%\n", "the module still serves, with the defaults")
        }
    }
}

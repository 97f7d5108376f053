import Foundation
import LuaBridge
import NIOConcurrencyHelpers
import NIOCore
import NetHostTestSupport
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua

/// `lua_per_loop_services`: one Lua state per event loop for the services named,
/// each loading the modules, connections served by the state of the loop that
/// accepted them; `require "nethost.shared"` is what the states share. The host
/// fixture runs two event loops.
@Suite("Lua on every loop", .serialized)
struct PerLoopLuaTests {
    /// Under ThreadSanitizer every connection costs many times more.
    static let connections = ProcessInfo.processInfo.environment["TSAN_OPTIONS"] == nil ? 64 : 24

    /// Adds `conn:loop_report()` to Lua: the connection's loop, and whether that loop also accepted it.
    final class LoopProbeModule: NativeModule {
        static let name = "loop_probe"
        static var luaConnectionMethods: [String: LuaFunction] {
            ["loop_report": { stack in
                let connection = try stack.checkUserdata(1, as: Connection.self, function: "loop_report")
                let acceptedHere = connection.channel.parent?.eventLoop === connection.eventLoop
                stack.push("\(PerLoopLuaTests.id(of: connection.eventLoop)) \(acceptedHere ? "same" : "hop")")
                return 1
            }]
        }
        init(context: ModuleContext) throws {}
    }

    static func id(of loop: any EventLoop) -> String { "\(ObjectIdentifier(loop).hashValue)" }

    /// Replies "STATE STATES LOOP same|hop VERSION" and closes; counts its loads,
    /// config reloads and connections in the shared dict "counts".
    static func whereModule(version: String = "v1", increments: Int = 1) -> String {
        """
        local shared = require "nethost.shared"
        local counts = shared.dict("counts")
        local state = shared.state()
        counts:incr("loads_" .. state, 1, 0)
        module:hook("config-reloaded", function () counts:incr("reloaded_" .. state, 1, 0) end)
        module:provides("net", { name = "where", listener = {
            onconnect = function (conn)
                for _ = 1, \(increments) do counts:incr("hits", 1, 0) end
                counts:incr("served_" .. state, 1, 0)
                conn:write(("%d %d %s \(version)\\n"):format(state, shared.states(), conn:loop_report()))
                conn:close()
            end,
        } })
        """
    }

    struct Reply {
        let state: Int
        let states: Int
        let loop: String
        let acceptedHere: Bool
        let version: String

        init(_ line: String) {
            let fields = line.split(separator: " ").map(String.init)
            state = fields.count > 0 ? Int(fields[0]) ?? 0 : 0
            states = fields.count > 1 ? Int(fields[1]) ?? 0 : 0
            loop = fields.count > 2 ? fields[2] : ""
            acceptedHere = fields.count > 3 && fields[3] == "same"
            version = fields.count > 4 ? fields[4] : ""
        }
    }

    static func options(perLoop: Bool) -> [String: ConfigValue] {
        var options: [String: ConfigValue] = [
            "modules_enabled": .strings("loop_probe", "where"), "where_ports": .list(.integer(0)),
        ]
        if perLoop { options["lua_per_loop_services"] = .strings("where") }
        return options
    }

    static func ask(_ fixture: HostFixture) throws -> Reply {
        Reply(try fixture.connect(to: "where").readLine())
    }

    @Test("a per-loop Lua service is served on every loop, each connection by the state of the loop that accepted it")
    func servedOnEveryLoop() async throws {
        let fixture = try HostFixture(modules: ["where": Self.whereModule()])
        let server = try await fixture.start(options: Self.options(perLoop: true), natives: [LoopProbeModule.self])
        let stateLoops = server.luaStateLoops.map(Self.id(of:))
        #expect(stateLoops.count == 2)
        var states: Set<Int> = []
        for _ in 0..<Self.connections {
            let reply = try Self.ask(fixture)
            states.insert(reply.state)
            #expect(reply.states == 2)
            #expect(reply.acceptedHere, "the connection moved off the loop that accepted it")
            // The callbacks ran in the state whose loop the connection is on.
            #expect(stateLoops.indices.contains(reply.state - 1) && stateLoops[reply.state - 1] == reply.loop)
        }
        // The kernel spreads the connections over the two listening sockets by their
        // addresses' hash: all on one of two would happen about once in 2^63 runs.
        #expect(states == [1, 2])
        #expect(server.ports.boundAddresses(of: "where").count == 1)
        #expect(fixture.logs.contains("run in one Lua state per event loop"))
        await fixture.stop()
    }

    @Test("every callback of a per-loop service's connection runs on the loop that accepted it, in that loop's state")
    func callbacksStayOnTheAcceptingLoop() async throws {
        let module = """
            local shared = require "nethost.shared"
            module:provides("net", { name = "where", listener = {
                onconnect = function (conn) conn:write(shared.state() .. " " .. conn:loop_report() .. "\\n") end,
                onincoming = function (conn, data) conn:write(shared.state() .. " " .. conn:loop_report() .. "\\n") end,
                ondisconnect = function (conn)
                    local loop, here = conn:loop_report():match("(%S+) (%S+)")
                    shared.dict("disconnects"):incr(shared.state() .. " " .. loop .. " " .. here, 1, 0)
                end,
            } })
            """
        let fixture = try HostFixture(modules: ["where": module])
        let server = try await fixture.start(options: Self.options(perLoop: true), natives: [LoopProbeModule.self])
        let stateLoops = server.luaStateLoops.map(Self.id(of:))
        var expected: [String: Int] = [:]
        for _ in 0..<Self.connections / 2 {
            let client = try fixture.connect(to: "where")
            let first = try client.readLine()
            for _ in 0..<3 {
                try client.send("x")
                #expect(try client.readLine() == first, "a callback ran on another loop or state")
            }
            let fields = first.split(separator: " ").map(String.init)
            #expect(fields.count == 3 && fields[2] == "same")
            let state = Int(fields.first ?? "") ?? 0
            #expect(stateLoops.indices.contains(state - 1) && stateLoops[state - 1] == fields[1])
            expected[first, default: 0] += 1
            client.close()
        }
        #expect(Set(expected.keys.compactMap { $0.split(separator: " ").first }) == ["1", "2"])
        // ondisconnect too, once per connection, on the same loop and state.
        let dicts = server.sharedDicts
        #expect(await fixture.waitUntil {
            expected.allSatisfy { line, count in dicts.get("disconnects", line) == .integer(count) }
        }, "\(dicts.keys("disconnects"))")
        await fixture.stop()
    }

    @Test("a per-loop module that fails in one state only: that loop closes its connections with an error, the other serves")
    func moduleFailingInOneState() async throws {
        let module = """
            local shared = require "nethost.shared"
            if shared.state() == 2 then error("no luck in state 2") end
            module:provides("net", { name = "where", listener = {
                onconnect = function (conn) conn:write(shared.state() .. "\\n"); conn:close() end,
            } })
            """
        let fixture = try HostFixture(modules: ["where": module])
        let server = try await fixture.start(options: Self.options(perLoop: true), natives: [LoopProbeModule.self])
        #expect(server.problems.all.contains { $0.hasPrefix("Lua state 2 (lua_per_loop_services): module 'where' failed to load") },
                "\(server.problems.all)")
        var served = 0
        var closed = 0
        for _ in 0..<Self.connections {
            let reply = try fixture.connect(to: "where").readToEnd()
            if reply == Array("1\n".utf8) { served += 1 } else if reply.isEmpty { closed += 1 }
        }
        #expect(served > 0 && closed > 0 && served + closed == Self.connections)
        #expect(fixture.logs.contains("the Lua state of this event loop does not provide it"))
        await fixture.stop()
    }

    @Test("\"*\" puts every Lua service on every loop; a name no module provides is a warning, and a wrong value an error")
    func optionShapes() async throws {
        let fixture = try HostFixture(modules: ["where": Self.whereModule()])
        var options = Self.options(perLoop: false)
        options["lua_per_loop_services"] = .string("*")
        let server = try await fixture.start(options: options, natives: [LoopProbeModule.self])
        var states: Set<Int> = []
        for _ in 0..<Self.connections { states.insert(try Self.ask(fixture).state) }
        #expect(states == [1, 2])
        await fixture.stop()

        let typo = try HostFixture(modules: ["where": Self.whereModule()])
        options["lua_per_loop_services"] = .strings("wehre")
        let typoServer = try await typo.start(options: options, natives: [LoopProbeModule.self])
        #expect(typoServer.problems.all.contains(
            "lua_per_loop_services names 'wehre', which no loaded Lua module provides as a service: it has no effect"))
        await typo.stop()

        let wrong = try HostFixture(modules: ["where": Self.whereModule()])
        options["lua_per_loop_services"] = .integer(1)
        let wrongServer = try await wrong.start(options: options, natives: [LoopProbeModule.self])
        #expect(wrongServer.luaStateLoops.count == 1)
        #expect(wrongServer.problems.all.contains { $0.hasPrefix("lua_per_loop_services: ") })
        await wrong.stop()
    }

    @Test("a per-loop service with direct TLS: the handshake and the service both on the loop that accepted it, no relay")
    func directTLSOnEveryLoop() async throws {
        let module = """
            local shared = require "nethost.shared"
            module:provides("net", { name = "where", encryption = "ssl", listener = {
                onconnect = function (conn)
                    conn:write(("%d %s %s\\n"):format(shared.state(), conn:loop_report(), tostring(conn:ssl())))
                    conn:close()
                end,
            } })
            """
        let fixture = try HostFixture(modules: ["where": module])
        let certificate = try TestCertificate(in: fixture.directory)
        var options = Self.options(perLoop: true)
        options["ssl"] = .table(ConfigTable(map: [
            .string("certificate"): .string(certificate.certificatePath), .string("key"): .string(certificate.keyPath),
        ]))
        let server = try await fixture.start(options: options, natives: [LoopProbeModule.self])
        let stateLoops = server.luaStateLoops.map(Self.id(of:))
        let port = try fixture.port(of: "where")
        var states: Set<Int> = []
        for _ in 0..<(ProcessInfo.processInfo.environment["TSAN_OPTIONS"] == nil ? 32 : 16) {
            let client = try await TLSProbeClient.connect(port: port)
            let answered = await client.waitForText("\n")
            _ = await client.waitForClose()
            let fields = client.receivedText.split(separator: "\n").first?.split(separator: " ").map(String.init) ?? []
            await client.shutdown()
            #expect(answered && fields.count == 4 && fields[2] == "same" && fields[3] == "true", "\(fields)")
            guard fields.count == 4, let state = Int(fields[0]) else { continue }
            #expect(stateLoops.indices.contains(state - 1) && stateLoops[state - 1] == fields[1])
            states.insert(state)
        }
        #expect(states == [1, 2])
        await fixture.stop()
    }

    @Test("the default is Prosody's one Lua state: every connection on the Lua loop, served by state 1 of 1")
    func defaultIsOneState() async throws {
        let fixture = try HostFixture(modules: ["where": Self.whereModule()])
        let server = try await fixture.start(options: Self.options(perLoop: false), natives: [LoopProbeModule.self])
        #expect(server.luaStateLoops.count == 1)
        let luaLoop = Self.id(of: server.luaLoop)
        for _ in 0..<16 {
            let reply = try Self.ask(fixture)
            #expect(reply.state == 1 && reply.states == 1)
            #expect(reply.loop == luaLoop && reply.acceptedHere)
        }
        // One state loaded the module once.
        #expect(server.sharedDicts.get("counts", "loads_1") == .integer(1))
        #expect(server.sharedDicts.keys("counts").filter { $0.hasPrefix("loads_") } == ["loads_1"])
        await fixture.stop()
    }

    @Test("incr on the shared dict from both states at once adds up exactly")
    func sharedIncrementAddsUp() async throws {
        let increments = 200
        let fixture = try HostFixture(modules: ["where": Self.whereModule(increments: increments)])
        let server = try await fixture.start(options: Self.options(perLoop: true), natives: [LoopProbeModule.self])
        let port = try fixture.port(of: "where")
        // Clients on four threads at once, so both loops run their states' callbacks together.
        let clients = 4
        let each = Self.connections / clients
        let failures = Failures()
        DispatchQueue.concurrentPerform(iterations: clients) { _ in
            for _ in 0..<each {
                do {
                    let client = try TestClient(connectingTo: "127.0.0.1", port: port, timeout: .seconds(10))
                    _ = try client.readLine()
                } catch {
                    failures.add("\(error)")
                }
            }
        }
        #expect(failures.all.isEmpty)
        let total = clients * each
        #expect(server.sharedDicts.get("counts", "hits") == .integer(total * increments))
        let served = [1, 2].map { server.sharedDicts.get("counts", "served_\($0)") }
        #expect(served.allSatisfy { if case .integer(let count)? = $0 { count > 0 } else { false } },
                "both states served connections: \(served)")
        await fixture.stop()
    }

    @Test("a reload reloads the modules in every state; a new file that fails leaves every state as it was")
    func reloadReachesEveryState() async throws {
        let fixture = try HostFixture(modules: ["where": Self.whereModule(version: "v1")])
        let options = Self.options(perLoop: true)
        let server = try await fixture.start(options: options, natives: [LoopProbeModule.self])
        let counts = { (key: String) in server.sharedDicts.get("counts", key) }
        #expect(counts("loads_1") == .integer(1) && counts("loads_2") == .integer(1))

        let file = "\(fixture.directory)/mod_where.lua"
        try Self.whereModule(version: "v2").write(toFile: file, atomically: true, encoding: .utf8)
        try await server.reload(HostFixture.options(options))
        #expect(counts("loads_1") == .integer(2) && counts("loads_2") == .integer(2))
        #expect(counts("reloaded_1") == .integer(1) && counts("reloaded_2") == .integer(1))
        var versions: [Int: Set<String>] = [:]
        for _ in 0..<Self.connections {
            let reply = try Self.ask(fixture)
            versions[reply.state, default: []].insert(reply.version)
        }
        #expect(versions == [1: ["v2"], 2: ["v2"]])

        // A file that does not compile: the running module stays, in every state.
        try "module:provides(".write(toFile: file, atomically: true, encoding: .utf8)
        try await server.reload(HostFixture.options(options))
        #expect(counts("loads_1") == .integer(2) && counts("loads_2") == .integer(2))
        #expect(counts("reloaded_1") == .integer(2) && counts("reloaded_2") == .integer(2))
        versions = [:]
        for _ in 0..<Self.connections {
            let reply = try Self.ask(fixture)
            versions[reply.state, default: []].insert(reply.version)
        }
        #expect(versions == [1: ["v2"], 2: ["v2"]])
        await fixture.stop()
    }

    @Test("a reload that changes lua_per_loop_services keeps the states the server started with, and says so")
    func reloadKeepsTheStates() async throws {
        let fixture = try HostFixture(modules: ["where": Self.whereModule()])
        let server = try await fixture.start(options: Self.options(perLoop: true), natives: [LoopProbeModule.self])
        try await server.reload(HostFixture.options(Self.options(perLoop: false)))
        #expect(fixture.logs.contains(
            "lua_per_loop_services changed, but a reload does not apply it (the Lua states are made at start): "
                + "the value NetHost started with stays in force until NetHost is restarted"))
        var states: Set<Int> = []
        for _ in 0..<Self.connections { states.insert(try Self.ask(fixture).state) }
        #expect(states == [1, 2])
        await fixture.stop()
    }

    @Test("server-started and server-stopping fire in every state; timers run in each")
    func eventsAndTimersInEveryState() async throws {
        let module = """
            local counts = require("nethost.shared").dict("counts")
            local state = require("nethost.shared").state()
            module:hook("server-started", function () counts:incr("started_" .. state, 1, 0) end)
            module:hook("server-stopping", function () counts:incr("stopping_" .. state, 1, 0) end)
            module:add_timer(0.01, function () counts:incr("timer_" .. state, 1, 0) end)
            module:provides("net", { name = "where", listener = {} })
            """
        let fixture = try HostFixture(modules: ["where": module])
        let server = try await fixture.start(options: Self.options(perLoop: true), natives: [LoopProbeModule.self])
        let dicts = server.sharedDicts
        #expect(await fixture.waitUntil {
            [1, 2].allSatisfy { dicts.get("counts", "started_\($0)") == .integer(1) && dicts.get("counts", "timer_\($0)") == .integer(1) }
        })
        await fixture.stop()
        #expect(dicts.get("counts", "stopping_1") == .integer(1) && dicts.get("counts", "stopping_2") == .integer(1))
    }

    final class Failures: Sendable {
        private let box = NIOLockedValueBox<[String]>([])
        func add(_ failure: String) { box.withLockedValue { $0.append(failure) } }
        var all: [String] { box.withLockedValue { $0 } }
    }
}

import Logging
import NetHostTestSupport
import ServiceLifecycle
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore

/// NetHostServer as a ServiceLifecycle service: `run` serves until the group
/// asks for a graceful shutdown, then stops in Prosody's order; it refuses to
/// run when it could listen nowhere.
@Suite("Server as a service", .serialized)
struct ServerServiceTests {
    static let echo = """
        module:provides("net", { name = "demo_echo", listener = { onincoming = function (conn, data) conn:write(data) end } })
        module:hook("server-stopping", function () module:log("info", "saw server-stopping") end)
        """

    static func server(in fixture: HostFixture, options: [String: ConfigValue]) async throws -> NetHostServer {
        try await NetHostServer(
            .init(
                options: HostFixture.options(options), configDirectory: fixture.directory,
                pluginPaths: [fixture.directory], threads: 2
            ),
            logger: Logger(label: "service-test", factory: fixture.logs.handler(label:))
        )
    }

    @Test("in a ServiceGroup it serves, and a graceful shutdown closes its ports and fires server-stopping")
    func servesUntilGracefulShutdown() async throws {
        let fixture = try HostFixture(modules: ["demo_echo": Self.echo])
        // shutdown_timeout 0: the open connection is closed at once rather than given
        // the default 30 s to end by itself (the drain has tests of its own).
        let server = try await Self.server(in: fixture, options: [
            "modules_enabled": .strings("demo_echo"), "demo_echo_ports": .list(.integer(0)), "shutdown_timeout": .integer(0),
        ])
        let group = ServiceGroup(services: [server], logger: Logger(label: "group", factory: { _ in SwiftLogNoOpLogHandler() }))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            // Generous: the group runs on Swift's concurrency pool, one thread per core,
            // which other suites' blocking socket reads may hold for seconds at a time.
            #expect(await fixture.waitUntil(timeout: .seconds(60)) { !server.ports.boundAddresses(of: "demo_echo").isEmpty })
            let port = try #require(server.ports.boundAddresses(of: "demo_echo").first?.port)
            let client = try TestClient(connectingTo: "127.0.0.1", port: port)
            try client.send("ping\n")
            #expect(try client.readLine() == "ping")

            await group.triggerGracefulShutdown()
            try await tasks.next()
            #expect(server.ports.openListeners.isEmpty)
            #expect(fixture.logs.contains("saw server-stopping"))
            #expect(try client.readToEnd().isEmpty, "the open connection is closed by the shutdown")
        }
        await fixture.stop()
    }

    @Test("run throws, after stopping, when no port could be opened")
    func refusesToRunListeningNowhere() async throws {
        let fixture = try HostFixture(modules: ["demo_echo": Self.echo])
        let occupied = try FreePort.allocate()
        let blocker = try TestListener(port: occupied)
        let server = try await Self.server(in: fixture, options: [
            "modules_enabled": .strings("demo_echo"), "demo_echo_ports": .list(.integer(occupied)),
        ])
        await #expect(throws: NetHostServer.StartFailure.self) { try await server.run() }
        #expect(fixture.logs.contains("saw server-stopping"))
        withExtendedLifetime(blocker) {}
        await fixture.stop()
    }
}

import Foundation
import SocketTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A graceful stop drains: the listeners close at once, every open connection's
/// listener is told `onstatus(conn, "shutdown")`, and the connections get
/// `shutdown_timeout` to end by themselves before what is left is closed; a
/// second SIGTERM closes them at once. NetHost exits 0 either way.
@Suite("CommandLine: graceful drain")
struct CommandLineDrainTests {
    /// A Lua service that says goodbye when told the server is stopping.
    static let farewell = """
        module:provides("net", { name = "farewell", listener = {
            onincoming = function (conn, data) conn:write(data) end,
            onstatus = function (conn, status)
                if status == "shutdown" then conn:write("bye\\n"); conn:close() end
            end,
        } })
        """

    static func start(_ workspace: CommandLineWorkspace, service: String, port: Int, shutdownTimeout: Int) async throws -> ManagedProcess {
        try workspace.write(farewell, to: "plugins/mod_farewell.lua")
        let config = try workspace.write(
            """
            plugin_paths = { "plugins" }
            modules_enabled = { "\(service)" }
            \(service)_ports = { \(port) }
            interfaces = { "127.0.0.1" }
            shutdown_timeout = \(shutdownTimeout)
            """,
            to: "prosody.cfg.lua"
        )
        return try await workspace.startListening(["--config", config], on: [("127.0.0.1", port)])
    }

    /// Whether the peer closes `client` within `timeout`, through `poll`: short
    /// checks with sleeps between, as a long blocking read would hold one of the few
    /// threads of Swift's concurrency pool that every other async test needs.
    static func closedByPeer(_ client: TestClient, within timeout: Duration) async throws -> Bool {
        try await poll(timeout: timeout) { try client.waitForPeerClose(timeout: .milliseconds(5)) ? true : nil } ?? false
    }

    @Test("a service told onstatus(conn, \"shutdown\") says goodbye and closes; NetHost exits as soon as it has")
    func serviceSaysGoodbye() async throws {
        let workspace = try CommandLineWorkspace(prefix: "drain-bye")
        let port = try FreePort.allocate()
        let nethost = try await Self.start(workspace, service: "farewell", port: port, shutdownTimeout: 300)
        defer { _ = nethost.stop() }
        let client = try TestClient(connectingTo: "127.0.0.1", port: port)
        try client.send("hello\n")
        #expect(try client.read(until: "\n") == "hello\n")

        nethost.send(signal: SIGTERM)
        #expect(try await Self.closedByPeer(client, within: .seconds(60)), "\(nethost.output)")
        #expect(String(decoding: try client.readToEnd(timeout: .zero), as: UTF8.self) == "bye\n")
        // Not the 300 s of shutdown_timeout: the last connection ended, so the drain did.
        #expect(try await nethost.waitForExit(timeout: .seconds(60)) == .exited(0), "\(nethost.output)")
        #expect(nethost.output.contains("draining: 1 open connection(s)"), "\(nethost.output)")
    }

    @Test("while draining, open connections still work and new ones are refused; a second SIGTERM closes them at once")
    func drainKeepsConnectionsUntilASecondSignal() async throws {
        let workspace = try CommandLineWorkspace(prefix: "drain-twice")
        let port = try FreePort.allocate()
        let nethost = try await Self.start(workspace, service: "demo_echo", port: port, shutdownTimeout: 300)
        defer { _ = nethost.stop() }
        let client = try TestClient(connectingTo: "127.0.0.1", port: port)

        nethost.send(signal: SIGTERM)
        _ = try await nethost.waitForLogLine(containing: "draining: 1 open connection(s)")
        try client.send("still here\n")
        #expect(try client.read(until: "\n") == "still here\n")
        #expect(throws: (any Error).self) { _ = try TestClient(connectingTo: "127.0.0.1", port: port) }

        nethost.send(signal: SIGTERM)
        // Well before the 300 s of shutdown_timeout.
        #expect(try await Self.closedByPeer(client, within: .seconds(60)))
        #expect(try await nethost.waitForExit(timeout: .seconds(60)) == .exited(0), "\(nethost.output)")
        #expect(nethost.output.contains("again: closing the open connections now"), "\(nethost.output)")
    }

    @Test("at shutdown_timeout the connections still open are closed, and NetHost exits 0")
    func drainEndsAtTheTimeout() async throws {
        let workspace = try CommandLineWorkspace(prefix: "drain-timeout")
        let port = try FreePort.allocate()
        let nethost = try await Self.start(workspace, service: "demo_echo", port: port, shutdownTimeout: 1)
        defer { _ = nethost.stop() }
        let client = try TestClient(connectingTo: "127.0.0.1", port: port)
        try client.send("ping\n")
        #expect(try client.read(until: "\n") == "ping\n")

        nethost.send(signal: SIGTERM)
        #expect(try await Self.closedByPeer(client, within: .seconds(60)))
        #expect(try await nethost.waitForExit(timeout: .seconds(60)) == .exited(0), "\(nethost.output)")
        #expect(nethost.output.contains("drain over: closing the 1 connection(s) still open"), "\(nethost.output)")
    }
}

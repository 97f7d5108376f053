import Foundation
import SocketTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

// Starting: one NetHost per pidfile, a run that can open none of its ports stops,
// and signals sent while modules load are handled, not fatal.

@Suite("CommandLine: starting")
struct CommandLineStartupTests {
    @Test
    func aSecondStartOnALockedPidfileIsRefusedAndTheFirstKeepsItsPidfile() async throws {
        let workspace = try CommandLineWorkspace(prefix: "pidlock")
        let first = try FreePort.allocate()
        let second = try FreePort.allocate()
        for (name, port) in [("first.cfg.lua", first), ("second.cfg.lua", second)] {
            try workspace.write(
                """
                modules_enabled = { "demo_echo" }
                interfaces = { "127.0.0.1" }
                demo_echo_ports = { \(port) }
                pidfile = "nethost.pid"

                """,
                to: name)
        }
        let running = try await workspace.startListening(["--config", "first.cfg.lua"], on: [("127.0.0.1", first)])
        defer { running.stop() }

        let refused = try await workspace.run(["--config", "second.cfg.lua"], watching: [("127.0.0.1", second)])

        #expect(refused.termination == .exited(1), "\(refused.output)")
        #expect(refused.output.contains("NetHost is already running: process \(running.pid) holds the pidfile"), "\(refused.output)")
        #expect(refused.listenedOn.isEmpty, "the refused instance listened on \(refused.listenedOn)")
        #expect(workspace.contents(of: "nethost.pid") == "\(running.pid)\n")
        #expect(running.isRunning)

        #expect(running.stop() == .exited(0), "\(running.output)")
        #expect(!workspace.exists("nethost.pid"))
    }

    @Test
    func aRunThatCanOpenNoneOfItsPortsExitsNonZero() async throws {
        let workspace = try CommandLineWorkspace(prefix: "noport")
        let taken = try await RecordingServer.start(host: "127.0.0.1")
        let config = try workspace.write(
            """
            modules_enabled = { "demo_echo" }
            interfaces = { "127.0.0.1" }
            demo_echo_ports = { \(taken.port) }
            pidfile = "nethost.pid"

            """,
            to: "prosody.cfg.lua")

        let result = try await workspace.run(["--config", config])

        #expect(result.termination == .exited(1), "\(result.output)")
        #expect(result.output.contains("no port could be opened"), "\(result.output)")
        #expect(!workspace.exists("nethost.pid"))
        try await taken.stop()
    }

    /// A module that waits, while loading, for the test to say go: SIGHUP and
    /// SIGUSR1 arrive while NetHost is still starting.
    @Test
    func signalsSentWhileModulesLoadAreHandled() async throws {
        let workspace = try CommandLineWorkspace(prefix: "early-hup")
        let port = try FreePort.allocate()
        let loading = workspace.path("loading")
        let go = workspace.path("go")
        try workspace.write(
            """
            plugin_paths = { "plugins" }
            modules_enabled = { "slow", "demo_echo" }
            interfaces = { "127.0.0.1" }
            demo_echo_ports = { \(port) }
            lua_instruction_budget = 0

            """,
            to: "prosody.cfg.lua")
        try workspace.write(
            """
            assert(io.open("\(loading)", "w")):close()
            while not io.open("\(go)") do end
            """,
            to: "plugins/mod_slow.lua")
        let nethost = try workspace.start(["--config", "prosody.cfg.lua"])
        defer { nethost.stop() }
        let started = try await poll(timeout: .seconds(15), interval: .milliseconds(5)) { () -> Bool? in
            if FileManager.default.fileExists(atPath: loading) { return true }
            return nethost.checkTermination() == nil ? nil : false
        }
        try #require(started == true, "the slow module never started loading: \(nethost.output)")

        nethost.send(signal: SIGHUP)
        nethost.send(signal: SIGUSR1)
        try workspace.write("", to: "go")

        _ = try await nethost.waitForLogLine(containing: "SIGHUP: reloading")
        try await waitForPort(host: "127.0.0.1", port: port, timeout: .seconds(15)) {
            nethost.checkTermination().map { "nethost \($0)" }
        }
        let client = try TestClient(connectingTo: "127.0.0.1", port: port)
        try client.send("after the early signals\n")
        #expect(try client.read(until: "\n") == "after the early signals\n")
        #expect(nethost.stop() == .exited(0), "\(nethost.output)")
    }
}

import Foundation
import SocketTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// What `nethost check --options` and docs/configuration.md say a reload does with an
// option, checked with the binary and SIGHUP: the command's own options (pidfile,
// control_socket) need a restart, the ports are applied. The library's classes are
// checked in process by ReloadScopeTests.

@Suite("CommandLine: what a SIGHUP reload applies")
struct CommandLineReloadScopeTests {
    static func config(pidfile: String, port: Int) -> String {
        """
        pidfile = "\(pidfile)"
        modules_enabled = { "demo_echo" }
        interfaces = { "127.0.0.1" }
        demo_echo_ports = { \(port) }

        """
    }

    /// A reload that changes `pidfile` (needs a restart) and `demo_echo_ports`
    /// (applied): the echo service moves to the new port, the pidfile stays where it
    /// was, no new one is written, and the log names pidfile as needing a restart.
    @Test
    func pidfileNeedsARestartWhilePortsAreApplied() async throws {
        let workspace = try CommandLineWorkspace(prefix: "reload-scope")
        let (first, second) = (try FreePort.allocate(), try FreePort.allocate())
        let config = try workspace.write(Self.config(pidfile: "first.pid", port: first), to: "prosody.cfg.lua")
        let nethost = try await workspace.startListening(["run", "--config", config], on: [("127.0.0.1", first)])
        defer { nethost.stop() }
        #expect(workspace.contents(of: "first.pid")?.trimmingCharacters(in: .whitespacesAndNewlines) == "\(nethost.pid)")

        try workspace.write(Self.config(pidfile: "second.pid", port: second), to: "prosody.cfg.lua")
        nethost.send(signal: SIGHUP)
        let warning = try await nethost.waitForLogLine(containing: "pidfile changed")
        #expect(warning.contains("pidfile changed, but a reload does not apply it (the pidfile is written and locked at start)"), "\(warning)")
        #expect(warning.contains("until NetHost is restarted"), "\(warning)")

        try await waitForPort(host: "127.0.0.1", port: second, timeout: .seconds(10))
        let client = try TestClient(connectingTo: "127.0.0.1", port: second)
        try client.send("moved\n")
        #expect(try client.read(until: "\n") == "moved\n")
        #expect(workspace.contents(of: "first.pid")?.trimmingCharacters(in: .whitespacesAndNewlines) == "\(nethost.pid)")
        #expect(!workspace.exists("second.pid"))
        #expect(!nethost.output.contains("demo_echo_ports changed"), "\(nethost.output)")
        #expect(nethost.stop() == .exited(0), "\(nethost.output)")
    }
}

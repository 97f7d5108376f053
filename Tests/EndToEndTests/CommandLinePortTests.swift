import Foundation
import SocketTestSupport
import Testing

// "A port that cannot be opened is logged with port, interface, service and reason;
// the others still open. Two services on one port is an error." (README, "Configuration")

@Suite("CommandLine: ports that cannot be opened")
struct CommandLinePortTests {
    @Test
    func aPortInUseIsLoggedAndTheOthersStillOpen() async throws {
        let workspace = try CommandLineWorkspace(prefix: "inuse")
        let taken = try await RecordingServer.start(host: "127.0.0.1")
        let free = try FreePort.allocate()
        let config = try workspace.write(
            """
            modules_enabled = { "demo_echo", "demo_whoami" }
            interfaces = { "127.0.0.1" }
            demo_echo_ports = { \(taken.port) }
            demo_whoami_ports = { \(free) }

            """,
            to: "prosody.cfg.lua")
        let nethost = try await workspace.startListening(["--config", config], on: [("127.0.0.1", free)])
        defer { nethost.stop() }

        let line = try await nethost.waitForLogLine(containing: "could not listen")
        for part in ["\(taken.port)", "127.0.0.1", "'demo_echo'", "already in use"] {
            #expect(line.contains(part), "the message lacks \(part): \(line)")
        }
        let client = try TestClient(connectingTo: "127.0.0.1", port: free)
        let answer = String(decoding: try client.readToEnd(), as: UTF8.self)
        #expect(answer.contains("127.0.0.1 \(client.localPort)"), "whoami said: \(answer)")
        try await taken.stop()
    }

    @Test
    func twoServicesOnOnePortIsAnErrorInRunAndCheck() async throws {
        let workspace = try CommandLineWorkspace(prefix: "twoonone")
        let port = try FreePort.allocate()
        let config = try workspace.write(
            """
            modules_enabled = { "demo_echo", "demo_whoami" }
            interfaces = { "127.0.0.1" }
            demo_echo_ports = { \(port) }
            demo_whoami_ports = { \(port) }

            """,
            to: "prosody.cfg.lua")

        let check = try await workspace.run(["check", "--config", config], watching: [("127.0.0.1", port)])
        #expect(check.termination != .exited(0), "check found nothing wrong: \(check.output)")
        let problems = check.standardOutput.split(separator: "\n").filter { $0.hasPrefix("  - ") }
        #expect(
            problems.contains { $0.contains("\(port)") && $0.contains("'demo_echo'") && $0.contains("'demo_whoami'") },
            "no problem names the port and both services: \(check.output)")
        #expect(check.listenedOn.isEmpty)

        let nethost = try await workspace.startListening(["--config", config], on: [("127.0.0.1", port)])
        defer { nethost.stop() }
        let clash = try await nethost.waitForLogLine(containing: "already configured on this port", timeout: .seconds(5))
        #expect(clash.contains(" error ") && clash.contains("\(port)"), "\(clash)")
        #expect(clash.contains("'demo_echo'") && clash.contains("'demo_whoami'"), "\(clash)")
    }
}

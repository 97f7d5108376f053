import Foundation
import SocketTestSupport
import Testing

// Open files: nethost raises its soft limit to the hard one at start, keeps
// max_connections below what the limit leaves room for, and says both.

@Suite("CommandLine: open file limit")
struct CommandLineDescriptorLimitTests {
    /// nethost started through prlimit(1), which sets the limits and then execs it (same PID).
    static func start(in workspace: CommandLineWorkspace, soft: Int, hard: Int, config: String) throws -> ManagedProcess {
        try ManagedProcess(
            executable: "prlimit",
            arguments: ["--nofile=\(soft):\(hard)", try NetHostFixture.binaryPath(), "--config", config],
            workingDirectory: workspace.root,
            name: "nethost"
        )
    }

    static func config(port: Int, settings: String = "") -> String {
        """
        modules_enabled = { "demo_echo" }
        interfaces = { "127.0.0.1" }
        demo_echo_ports = { \(port) }
        network_settings = { \(settings) }
        """
    }

    @Test("a soft limit below the hard one is raised, and max_connections fits the raised limit")
    func softLimitIsRaised() async throws {
        let workspace = try CommandLineWorkspace(prefix: "nofile-raise")
        let port = try FreePort.allocate()
        try workspace.write(Self.config(port: port), to: "prosody.cfg.lua")
        let nethost = try Self.start(in: workspace, soft: 256, hard: 512, config: "prosody.cfg.lua")
        defer { nethost.stop() }
        try await nethost.waitForLogLine(containing: "listening for service 'demo_echo'")
        #expect(nethost.output.contains("raised the open file limit from 256 to 512"), "\(nethost.output)")
        #expect(nethost.output.contains("info [nethost] max_connections 100000 is more than 512 open files allow: using "),
                "\(nethost.output)")
        let maximum = try #require(Self.maximumUsed(in: nethost.output))
        #expect(maximum > 400 && maximum <= 512 - 32, "\(maximum): 512 less what is open and a reserve of 32")
        let limits = try String(contentsOfFile: "/proc/\(nethost.pid)/limits", encoding: .utf8)
        let openFiles = limits.split(separator: "\n").first { $0.hasPrefix("Max open files") } ?? ""
        #expect(openFiles.split(separator: " ", omittingEmptySubsequences: true).dropFirst(3).prefix(2) == ["512", "512"],
                "\(openFiles)")
    }

    @Test("a configured max_connections above the limit is lowered with a warning, and connections past it are refused")
    func configuredMaximumIsLowered() async throws {
        let workspace = try CommandLineWorkspace(prefix: "nofile-clamp")
        let port = try FreePort.allocate()
        try workspace.write(Self.config(port: port, settings: "max_connections = 5000"), to: "prosody.cfg.lua")
        let nethost = try Self.start(in: workspace, soft: 128, hard: 128, config: "prosody.cfg.lua")
        defer { nethost.stop() }
        try await nethost.waitForLogLine(containing: "listening for service 'demo_echo'")
        #expect(!nethost.output.contains("raised the open file limit"), "\(nethost.output)")
        #expect(nethost.output.contains("warn [nethost] max_connections 5000 is more than 128 open files allow: using "),
                "\(nethost.output)")
        let maximum = try #require(Self.maximumUsed(in: nethost.output))
        #expect(maximum > 64 && maximum <= 128 - 16, "\(maximum): 128 less what is open and a reserve of 16")
        var clients: [TestClient] = []
        for _ in 0 ..< maximum {
            let client = try TestClient(connectingTo: "127.0.0.1", port: port)
            try client.send("x\n")
            #expect(try client.readLine() == "x")
            clients.append(client)
        }
        let refused = try TestClient(connectingTo: "127.0.0.1", port: port)
        #expect(try refused.readToEnd().isEmpty, "the connection past max_connections is closed at accept")
        try await nethost.waitForLogLine(containing: "max_connections (\(maximum)) reached")
    }
    /// N in "... open files allow: using N (...".
    static func maximumUsed(in output: String) -> Int? {
        guard let range = output.range(of: "open files allow: using ") else { return nil }
        return Int(output[range.upperBound...].prefix { $0.isNumber })
    }
}

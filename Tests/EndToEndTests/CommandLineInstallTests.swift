import Foundation
import SocketTestSupport
import Testing

/// `make install PREFIX=...` puts the binary, the shipped modules, an example
/// config, a systemd unit and a logrotate snippet under the prefix, and the
/// installed binary works from any folder: it finds its modules beside itself
/// (PREFIX/share/nethost/modules), not in the source tree. `make uninstall`
/// takes them away again.
@Suite("CommandLine: make install")
struct CommandLineInstallTests {
    /// The package root, where the Makefile is.
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    /// Runs a program to its end; its exit and its output.
    static func run(_ program: String, _ arguments: [String], in directory: String = "/") async throws
        -> (termination: ManagedProcess.Termination, output: String, standardOutput: String)
    {
        let process = try ManagedProcess(executable: program, arguments: arguments, workingDirectory: directory)
        let termination = try await process.waitForExit(timeout: .seconds(120))
        return (termination, process.output, process.standardOutput)
    }

    static func make(_ arguments: [String]) async throws -> (termination: ManagedProcess.Termination, output: String, standardOutput: String) {
        try await run("make", ["-C", packageRoot] + arguments)
    }

    @Test("installed under a temporary prefix: check passes on the installed config, the installed binary serves a shipped module from /")
    func installUseUninstall() async throws {
        let prefix = try TemporaryDirectory(prefix: "install")
        let binary = try NetHostFixture.binaryPath()
        let installed = try await Self.make(["install", "PREFIX=\(prefix.path)", "INSTALL_BINARY=\(binary)"])
        #expect(installed.termination == .exited(0), "\(installed.output)")
        for file in [
            "bin/nethost", "share/nethost/modules/mod_demo_echo.lua", "share/nethost/prosody.cfg.lua.example",
            "etc/nethost/prosody.cfg.lua", "lib/systemd/system/nethost.service", "etc/logrotate.d/nethost",
        ] {
            #expect(FileManager.default.fileExists(atPath: prefix.file(file)), "make install did not install \(file)")
        }
        let unit = try String(contentsOfFile: prefix.file("lib/systemd/system/nethost.service"), encoding: .utf8)
        #expect(unit.contains("ExecStart=\(prefix.path)/bin/nethost --config \(prefix.path)/etc/nethost/prosody.cfg.lua"))
        #expect(unit.contains("Type=notify") && unit.contains("ExecReload=/bin/kill -HUP $MAINPID"))

        // From /, with the installed config: the shipped modules are found.
        let elsewhere = try CommandLineWorkspace(prefix: "installed")
        let check = try await Self.run(prefix.file("bin/nethost"), ["check", "--config", prefix.file("etc/nethost/prosody.cfg.lua")])
        #expect(check.termination == .exited(0), "\(check.output)")
        #expect(check.standardOutput.contains("no problems found"), "\(check.output)")

        // And it serves: the shipped echo module on a free port.
        let port = try FreePort.allocate()
        let config = try elsewhere.write(
            """
            modules_enabled = { "demo_echo" }
            demo_echo_ports = { \(port) }
            interfaces = { "127.0.0.1" }
            """,
            to: "prosody.cfg.lua"
        )
        let nethost = try ManagedProcess(
            executable: prefix.file("bin/nethost"), arguments: ["--config", config], workingDirectory: "/", name: "nethost"
        )
        defer { _ = nethost.stop() }
        try await waitForPort(host: "127.0.0.1", port: port) { nethost.checkTermination().map { "nethost \($0): \(nethost.output)" } }
        let client = try TestClient(connectingTo: "127.0.0.1", port: port)
        try client.send("hello from an installed nethost\n")
        #expect(try client.read(until: "\n") == "hello from an installed nethost\n")
        #expect(nethost.stop() == .exited(0))

        let removed = try await Self.make(["uninstall", "PREFIX=\(prefix.path)"])
        #expect(removed.termination == .exited(0), "\(removed.output)")
        let left = FileManager.default.enumerator(atPath: prefix.path)?.compactMap { $0 as? String }.filter {
            var isDirectory: ObjCBool = false
            return FileManager.default.fileExists(atPath: prefix.file($0), isDirectory: &isDirectory) && !isDirectory.boolValue
        } ?? []
        #expect(left.isEmpty, "make uninstall left \(left)")
    }
}

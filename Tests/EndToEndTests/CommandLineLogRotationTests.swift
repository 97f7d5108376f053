import Foundation
import SocketTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// logrotate renames the log file, then `systemctl reload nethost` sends SIGHUP
/// (the shipped logrotate snippet does just that): NetHost opens the file again by
/// name, so every line after the reload is in the new file, and no line is lost
/// on the way.
@Suite("CommandLine: log rotation")
struct CommandLineLogRotationTests {
    @Test("connections logged before the SIGHUP are in the renamed file, those after it in the new one; none is missing")
    func rotationUnderTraffic() async throws {
        let workspace = try CommandLineWorkspace(prefix: "rotate")
        let port = try FreePort.allocate()
        let logPath = workspace.path("nethost.log")
        let config = try workspace.write(
            """
            modules_enabled = { "demo_whoami" }
            demo_whoami_ports = { \(port) }
            interfaces = { "127.0.0.1" }
            log = { { levels = { min = "debug" }, to = "file", filename = "\(logPath)" } }
            """,
            to: "prosody.cfg.lua"
        )
        let nethost = try await workspace.startListening(["--config", config], on: [("127.0.0.1", port)])
        defer { _ = nethost.stop() }

        /// One connection: whoami answers with the client's address and closes. Its port names it in the log.
        func connect() throws -> Int {
            let client = try TestClient(connectingTo: "127.0.0.1", port: port)
            _ = try client.read(until: "\n")
            return client.localPort
        }
        var beforeRename: [Int] = []
        for _ in 0..<50 { beforeRename.append(try connect()) }
        try FileManager.default.moveItem(atPath: logPath, toPath: logPath + ".1")
        var beforeReload: [Int] = []  // still written to the renamed file, as with any logger until it reopens
        for _ in 0..<20 { beforeReload.append(try connect()) }
        nethost.send(signal: SIGHUP)
        let reopened = try await poll(timeout: .seconds(20)) { () -> Bool? in
            workspace.contents(of: "nethost.log")?.contains("log files opened again") == true ? true : nil
        }
        #expect(reopened == true, "no new log file after SIGHUP: \(nethost.output)")
        var afterReload: [Int] = []
        for _ in 0..<50 { afterReload.append(try connect()) }
        #expect(nethost.stop() == .exited(0))

        func ports(in text: String) -> [Int] {
            text.split(separator: "\n").compactMap { line in
                guard line.contains(" connected client=127.0.0.1:") else { return nil }
                return line.split(separator: ":").last.flatMap { Int($0.prefix { $0.isNumber }) }
            }
        }
        let old = ports(in: workspace.contents(of: "nethost.log.1") ?? "")
        let new = ports(in: workspace.contents(of: "nethost.log") ?? "")
        #expect(Set(old) == Set(beforeRename + beforeReload), "old file: \(old.count) connections, expected \(beforeRename.count + beforeReload.count)")
        #expect(Set(new) == Set(afterReload), "new file: \(new.count) connections, expected \(afterReload.count)")
    }
}

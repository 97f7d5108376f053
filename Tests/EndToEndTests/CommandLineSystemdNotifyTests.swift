import Foundation
import SocketTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// With `Type=notify`, systemd starts NetHost with `NOTIFY_SOCKET` set and waits
/// for `READY=1`; a reload is bracketed by `RELOADING=1` and `READY=1`, a stop
/// starts with `STOPPING=1` (sd_notify(3)). Here the test is systemd: it binds the
/// datagram socket and reads what nethost sends.
@Suite("CommandLine: systemd readiness notifications")
struct CommandLineSystemdNotifyTests {
    /// A Unix datagram socket bound to a path, read with a time limit.
    final class NotifySocket {
        let path: String
        private let fd: Int32

        init(in directory: String) throws {
            path = directory + "/notify.sock"
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            guard fd >= 0 else { throw FixtureError("socket(AF_UNIX, SOCK_DGRAM) failed: errno \(errno)") }
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8)
            withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            guard bound == 0 else { throw FixtureError("bind(\(path)) failed: errno \(errno)") }
        }

        deinit { close(fd) }

        /// The next message, or nil if none comes within `seconds`; checked through
        /// `poll`, so as not to hold a thread of Swift's concurrency pool.
        func next(within seconds: Int = 20) async -> String? {
            (try? await poll(timeout: .seconds(seconds)) { () -> String? in
                var pollfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&pollfd, 1, 0) == 1 else { return nil }
                var buffer = [UInt8](repeating: 0, count: 4096)
                let count = recv(fd, &buffer, buffer.count, 0)
                return String(decoding: buffer[..<max(count, 0)], as: UTF8.self)
            }) ?? nil
        }
    }

    @Test("READY=1 once the ports are open; RELOADING=1 then READY=1 around a SIGHUP; STOPPING=1 at SIGTERM")
    func notifications() async throws {
        let workspace = try CommandLineWorkspace(prefix: "notify")
        let port = try FreePort.allocate()
        let config = try workspace.write(
            """
            modules_enabled = { "demo_whoami" }
            demo_whoami_ports = { \(port) }
            interfaces = { "127.0.0.1" }
            """,
            to: "prosody.cfg.lua"
        )
        let notify = try NotifySocket(in: workspace.root)
        let nethost = try ManagedProcess(
            executable: try NetHostFixture.binaryPath(), arguments: ["--config", config],
            environment: ["NOTIFY_SOCKET": notify.path], workingDirectory: workspace.root, name: "nethost"
        )
        defer { _ = nethost.stop() }

        let ready = try #require(await notify.next(), "no READY=1; \(nethost.output)")
        #expect(ready.hasPrefix("READY=1\n"), "\(ready)")
        // Ready means serving: the port takes a connection now.
        let client = try TestClient(connectingTo: "127.0.0.1", port: port)
        #expect(try client.read(until: "\n").hasPrefix("127.0.0.1 "))

        nethost.send(signal: SIGHUP)
        let reloading = try #require(await notify.next(), "no RELOADING=1; \(nethost.output)")
        #expect(reloading.hasPrefix("RELOADING=1\nMONOTONIC_USEC="), "\(reloading)")
        let readyAgain = try #require(await notify.next(), "no READY=1 after the reload; \(nethost.output)")
        #expect(readyAgain.hasPrefix("READY=1\n"), "\(readyAgain)")

        nethost.send(signal: SIGTERM)
        #expect(await notify.next() == "STOPPING=1", "\(nethost.output)")
        #expect(try await nethost.waitForExit(timeout: .seconds(15)) == .exited(0), "\(nethost.output)")
    }
}

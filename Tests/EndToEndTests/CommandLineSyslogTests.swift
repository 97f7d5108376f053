import Foundation
import SocketTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

// `log = "*syslog"` (README, "Configuration"): what the system log receives.

/// A system log of the test's own: a datagram socket that nethost reaches as
/// `/dev/log`, in a mount namespace of nethost's own (`unshare --mount`), where
/// `/dev` is a fresh tmpfs with `null`, `zero`, `random`, `urandom` and `tty` bound
/// in from the real one and `log` a link to this socket. Nothing outside nethost's
/// namespace changes.
final class TestSystemLog {
    let directory: TemporaryDirectory
    let socketPath: String
    private let fd: Int32

    /// Whether this machine lets the tests make mount namespaces (root, or a
    /// container allowed to); the test needs one and is not run without.
    static let isAvailable: Bool = {
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
        probe.arguments = ["--mount", "--propagation", "private", "--", "/bin/sh", "-c", "mount -t tmpfs probe /mnt"]
        probe.standardOutput = FileHandle.nullDevice
        probe.standardError = FileHandle.nullDevice
        guard (try? probe.run()) != nil else { return false }
        probe.waitUntilExit()
        return probe.terminationStatus == 0
    }()

    init() throws {
        self.directory = try TemporaryDirectory(prefix: "syslog")
        self.socketPath = self.directory.file("log")
        self.fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        guard self.fd >= 0 else { throw FixtureError("socket(AF_UNIX) failed: errno \(errno)") }
        var timeout = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(self.fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let path = Array(self.socketPath.utf8)
        guard path.count < MemoryLayout.size(ofValue: address.sun_path) else { throw FixtureError("socket path too long: \(self.socketPath)") }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: path) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(self.fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0 else { throw FixtureError("bind(\(self.socketPath)) failed: errno \(errno)") }
    }

    deinit { close(self.fd) }

    /// What runs nethost in its own mount namespace with this socket as `/dev/log`
    /// (for ``NetHostFixture/start(config:modules:arguments:environment:launcher:readiness:timeout:)``).
    func launcher() throws -> [String] {
        let script = """
            set -e
            old="$1"; log="$2"; shift 2
            mount --rbind /dev "$old"
            mount -t tmpfs nethost-test-dev /dev
            for node in null zero full random urandom tty; do
                if [ -e "$old/$node" ]; then touch "/dev/$node"; mount --bind "$old/$node" "/dev/$node"; fi
            done
            ln -s "$log" /dev/log
            exec "$@"
            """
        let old = try self.directory.directory("host-dev")
        return ["/usr/bin/unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", script, "sh", old, self.socketPath]
    }

    private var received: [String] = []

    /// Every record received so far, once one contains `text` (waiting for it, bounded).
    func records(through text: String, timeout: Duration = .seconds(10)) throws -> [String] {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        var buffer = [UInt8](repeating: 0, count: 65536)
        while !self.received.contains(where: { $0.contains(text) }) {
            guard ContinuousClock.now < deadline else {
                throw FixtureError("no syslog record containing \"\(text)\" in \(timeout); got:\n\(self.received.joined(separator: "\n"))")
            }
            let count = buffer.withUnsafeMutableBytes { recv(self.fd, $0.baseAddress, $0.count, 0) }
            if count > 0 { self.received.append(String(decoding: buffer.prefix(count), as: UTF8.self)) }
        }
        return self.received
    }
}

@Suite("CommandLine: syslog")
struct CommandLineSyslogTests {
    /// glibc sends `<PRIORITY>TIMESTAMP IDENT[PID]: MESSAGE`; the priority is the
    /// facility (daemon, 3 << 3) plus the level (warning 4, info 6).
    @Test(.enabled(if: TestSystemLog.isAvailable, "needs a mount namespace (unshare --mount) for a /dev/log of its own"))
    func recordsGoToTheSystemLogWithTheirLevelAsPriority() async throws {
        let systemLog = try TestSystemLog()
        let port = try FreePort.allocate()
        let nethost = try await NetHostFixture.start(
            config: { paths in
                """
                plugin_paths = { "\(paths.modulesDirectory)" }
                modules_enabled = { "talker" }
                interfaces = { "127.0.0.1" }
                talker_ports = { \(port) }
                log = "*syslog"

                """
            },
            modules: ["mod_talker.lua": """
                module:log("debug", "a debug line, below the sink's levels")
                module:log("warn", "a warning for the system log")
                module:provides("net", { name = "talker", listener = {} })
                """],
            launcher: try systemLog.launcher(),
            readiness: [.listening(host: "127.0.0.1", port: port)]
        )
        defer { nethost.stop() }
        let tag = "nethost[\(nethost.process.pid)]: "

        // Logged after the module loaded, so everything logged before it has arrived too.
        let records = try systemLog.records(through: "listening for service 'talker'")
        let warning = try #require(records.first { $0.contains("a warning for the system log") }, "\(records)")
        #expect(warning.hasPrefix("<28>"), "\(warning)")
        #expect(warning.contains(tag + "[nethost] a warning for the system log module=talker"), "\(warning)")
        let listening = try #require(records.first { $0.contains("listening for service 'talker'") })
        #expect(listening.hasPrefix("<30>"), "\(listening)")
        #expect(listening.contains(tag), "\(listening)")
        #expect(!records.contains { $0.contains("a debug line") }, "\(records)")
        // Once it has exited, its console output is complete.
        #expect(nethost.stop() == .exited(0))
        #expect(!nethost.log.contains("a warning for the system log"), "the console got the record too: \(nethost.log)")
    }
}

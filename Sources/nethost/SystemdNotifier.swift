import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// systemd's service readiness protocol (sd_notify(3)), for a unit with
/// `Type=notify`: systemd counts NetHost started once it says `READY=1` (its ports
/// are open), shows `RELOADING=1` while a SIGHUP is applied and `STOPPING=1` once it
/// drains. The messages go as datagrams to the Unix socket `NOTIFY_SOCKET` names
/// (a leading "@" is Linux's abstract namespace); without it, nothing is sent.
/// Sending is best effort: systemd not listening never stops NetHost.
struct SystemdNotifier: Sendable {
    let socketPath: String

    init?(environment: [String: String] = ProcessInfo.processInfo.environment) {
        guard let path = environment["NOTIFY_SOCKET"], !path.isEmpty else { return nil }
        socketPath = path
    }

    func ready(status: String) { send("READY=1\nSTATUS=\(status)") }

    /// systemd 253's `Type=notify-reload` wants the monotonic time with it; older ones ignore it.
    func reloading() { send("RELOADING=1\nMONOTONIC_USEC=\(Self.monotonicMicroseconds())") }

    func stopping() { send("STOPPING=1") }

    func send(_ message: String) {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var pathBytes = Array(socketPath.utf8)
        if pathBytes.first == UInt8(ascii: "@") { pathBytes[0] = 0 }
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard pathBytes.count < capacity else { return }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: pathBytes)
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + pathBytes.count + (pathBytes.first == 0 ? 0 : 1))
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        let bytes = Array(message.utf8)
        _ = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                bytes.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL), socketAddress, length) }
            }
        }
    }

    static func monotonicMicroseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1_000
    }
}

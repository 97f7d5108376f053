import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What the kernel says about this process's own sockets, for tests of the options
/// NetHost sets on them (`network_settings.tcp_nodelay`, `tcp_keepalive`, `tcp_backlog`).
public enum SocketInspection {
    /// The server's end of a loopback TCP connection in this process: the descriptor
    /// whose local port is `serverPort` and whose peer's port is `clientPort`.
    /// The descriptor stays the server's; do not close it.
    public static func acceptedSocket(serverPort: Int, clientPort: Int) -> Int32? {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return nil }
        for entry in entries {
            guard let fd = Int32(entry), port(of: fd, peer: false) == serverPort, port(of: fd, peer: true) == clientPort else { continue }
            return fd
        }
        return nil
    }

    /// An integer socket option, or nil if it cannot be read.
    public static func option(_ fd: Int32, level: Int32, name: Int32) -> Int32? {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, level, name, &value, &length) == 0 else { return nil }
        return value
    }

    private static func port(of fd: Int32, peer: Bool) -> Int? {
        var address = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { peer ? getpeername(fd, $0, &length) : getsockname(fd, $0, &length) }
        }
        guard result == 0 else { return nil }
        let family = Int32(address.ss_family)
        guard family == AF_INET || family == AF_INET6 else { return nil }
        // sin_port and sin6_port sit at the same offset, in network byte order.
        return withUnsafeBytes(of: address) { Int(UInt16(bigEndian: $0.loadUnaligned(fromByteOffset: 2, as: UInt16.self))) }
    }

    /// The listen backlog (the most connections the kernel queues for `accept`) of each
    /// IPv4 TCP socket listening on `port`, as the kernel reports it to `ss` (its
    /// "Send-Q" column): a NETLINK_SOCK_DIAG dump of the listening sockets.
    public static func listenBacklogs(port: Int) throws -> [Int] {
        let fd = socket(AF_NETLINK, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 4 /* NETLINK_SOCK_DIAG */)
        guard fd >= 0 else { throw FixtureError("netlink socket: errno \(errno)") }
        defer { close(fd) }

        // struct nlmsghdr (16 bytes), then struct inet_diag_req_v2 (56 bytes).
        var request = [UInt8](repeating: 0, count: 72)
        func put32(_ value: UInt32, at offset: Int) { withUnsafeBytes(of: value) { request.replaceSubrange(offset..<offset + 4, with: $0) } }
        func put16(_ value: UInt16, at offset: Int) { withUnsafeBytes(of: value) { request.replaceSubrange(offset..<offset + 2, with: $0) } }
        put32(UInt32(request.count), at: 0)
        put16(20 /* SOCK_DIAG_BY_FAMILY */, at: 4)
        put16(0x1 | 0x300 /* NLM_F_REQUEST | NLM_F_DUMP */, at: 6)
        put32(1, at: 8)
        request[16] = UInt8(AF_INET)
        request[17] = UInt8(IPPROTO_TCP)
        put32(1 << 10 /* TCP_LISTEN */, at: 20)
        let sent = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        guard sent == request.count else { throw FixtureError("netlink send: errno \(errno)") }

        var backlogs: [Int] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let received = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard received > 0 else { throw FixtureError("netlink recv: errno \(errno)") }
            var offset = 0
            while offset + 16 <= received {
                let (length, type) = buffer.withUnsafeBytes {
                    (Int($0.loadUnaligned(fromByteOffset: offset, as: UInt32.self)), $0.loadUnaligned(fromByteOffset: offset + 4, as: UInt16.self))
                }
                if type == 3 /* NLMSG_DONE */ { return backlogs }
                if type == 2 /* NLMSG_ERROR */ { throw FixtureError("netlink: the kernel refused the dump") }
                guard length >= 16, offset + length <= received else { throw FixtureError("netlink: a malformed message") }
                // struct inet_diag_msg after the header: idiag_sport (big-endian) at 4, idiag_wqueue at 60.
                let message = offset + 16
                if length >= 16 + 64 {
                    buffer.withUnsafeBytes { bytes in
                        let sport = Int(UInt16(bigEndian: bytes.loadUnaligned(fromByteOffset: message + 4, as: UInt16.self)))
                        if sport == port {
                            backlogs.append(Int(bytes.loadUnaligned(fromByteOffset: message + 60, as: UInt32.self)))
                        }
                    }
                }
                offset += (length + 3) & ~3
            }
        }
    }
}

import Foundation

#if canImport(Glibc)
import Glibc
#endif

#if os(Linux)
/// The listening TCP sockets, asked of the kernel over netlink (`NETLINK_SOCK_DIAG`,
/// as `ss -l` does). Asked for the LISTEN state alone, the kernel walks only its
/// table of listening sockets; `/proc/net/tcp` formats every socket of the network
/// namespace, thousands of them once the tests that open many connections have run,
/// and tests poll it every few milliseconds.
enum SocketDiagnostics {
    // <linux/netlink.h>, <linux/sock_diag.h>, <linux/inet_diag.h>, <netinet/tcp.h>.
    private static let netlinkFamily: Int32 = 16             // AF_NETLINK
    private static let sockDiagProtocol: Int32 = 4           // NETLINK_SOCK_DIAG
    private static let sockDiagByFamily: UInt16 = 20         // SOCK_DIAG_BY_FAMILY
    private static let requestDumpFlags: UInt16 = 0x1 | 0x300 // NLM_F_REQUEST | NLM_F_DUMP
    private static let messageDone: UInt16 = 3               // NLMSG_DONE
    private static let messageError: UInt16 = 2              // NLMSG_ERROR
    private static let listenState: UInt32 = 10              // TCP_LISTEN
    private static let headerSize = 16                       // struct nlmsghdr
    private static let requestSize = 56                      // struct inet_diag_req_v2
    private static let replySize = 72                        // struct inet_diag_msg

    /// Every listening TCP socket of both families; nil if the kernel would not answer.
    static func listeningTCP() -> [TCPListeners.Entry]? {
        var entries: [TCPListeners.Entry] = []
        for family in [AF_INET, AF_INET6] {
            guard let some = dump(family: UInt8(family)) else { return nil }
            entries += some
        }
        return entries
    }

    private static func dump(family: UInt8) -> [TCPListeners.Entry]? {
        let fd = socket(netlinkFamily, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), sockDiagProtocol)
        guard fd >= 0 else { return nil }
        defer { close(fd) }

        var request = [UInt8](repeating: 0, count: headerSize + requestSize)
        store(UInt32(request.count), at: 0, in: &request)
        store(sockDiagByFamily, at: 4, in: &request)
        store(requestDumpFlags, at: 6, in: &request)
        store(UInt32(1), at: 8, in: &request)                 // sequence number
        request[headerSize] = family                           // sdiag_family
        request[headerSize + 1] = UInt8(IPPROTO_TCP)           // sdiag_protocol
        store(UInt32(1) << listenState, at: headerSize + 4, in: &request) // idiag_states
        guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, 0) }) == request.count else { return nil }

        var entries: [TCPListeners.Entry] = []
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let received = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if received < 0, errno == EINTR { continue }
            guard received > 0 else { return nil }
            var offset = 0
            while offset + headerSize <= received {
                let length = Int(load(UInt32.self, at: offset, in: buffer))
                let type = load(UInt16.self, at: offset + 4, in: buffer)
                guard length >= headerSize, offset + length <= received else { return nil }
                if type == messageDone { return entries }
                if type == messageError { return nil }
                if type == sockDiagByFamily, length >= headerSize + replySize {
                    entries.append(entry(at: offset + headerSize, in: buffer))
                }
                offset += (length + 3) & ~3
            }
        }
    }

    /// One `inet_diag_msg`: family, state, timer, retransmits, then the socket's id
    /// (source port, destination port, both big-endian; source and destination
    /// addresses, 16 bytes each; interface; cookie), then expires, the queues, uid, inode.
    private static func entry(at start: Int, in buffer: [UInt8]) -> TCPListeners.Entry {
        let ipv6 = Int32(buffer[start]) == AF_INET6
        let port = Int(buffer[start + 4]) << 8 | Int(buffer[start + 5])
        // The address's 32-bit words as they lie in memory, as /proc/net/tcp prints them.
        let words = (0..<(ipv6 ? 4 : 1)).map { load(UInt32.self, at: start + 8 + $0 * 4, in: buffer) }
        let inode = Int(load(UInt32.self, at: start + 68, in: buffer))
        return TCPListeners.Entry(words: words, port: port, ipv6Table: ipv6, inode: inode)
    }

    private static func store<T: FixedWidthInteger>(_ value: T, at offset: Int, in bytes: inout [UInt8]) {
        withUnsafeBytes(of: value) { bytes.replaceSubrange(offset..<offset + $0.count, with: $0) }
    }

    private static func load<T: FixedWidthInteger>(_: T.Type, at offset: Int, in bytes: [UInt8]) -> T {
        bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: T.self) }
    }
}
#endif

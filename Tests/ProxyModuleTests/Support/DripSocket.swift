#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// A TCP client that sends with TCP_NODELAY, so each `send` leaves as its own
/// segment instead of waiting for Nagle's algorithm to gather it with the
/// next: the way to deliver a header a byte at a time. Blocking, bounded waits.
final class DripSocket {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    private let fd: Int32
    private var pending: [UInt8] = []

    init(port: Int, timeout: Double = 5) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket() failed: errno \(errno)") }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
        guard connected else {
            close(fd)
            throw Failure(description: "connect to 127.0.0.1:\(port) failed: errno \(errno)")
        }
    }

    deinit { close(fd) }

    /// Sends the bytes one `send` (one segment) each; false as soon as a send
    /// fails (the server has closed). How many of them the server takes in one
    /// read is up to the kernel; byte-at-a-time reads exactly are ProxyHeaderStageTests'.
    @discardableResult
    func drip(_ bytes: [UInt8]) -> Bool {
        for byte in bytes {
            guard send([byte]) else { return false }
        }
        return true
    }

    /// One `send` call; false if it failed.
    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) == $0.count }
    }

    func readLine() throws -> String {
        while true {
            if let index = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: pending[..<index], as: UTF8.self)
                pending.removeSubrange(...index)
                return line
            }
            guard try fill() else { throw Failure(description: "closed before a full line") }
        }
    }

    func read(count: Int) throws -> [UInt8] {
        while pending.count < count {
            guard try fill() else { throw Failure(description: "closed after \(pending.count) of \(count) bytes") }
        }
        defer { pending.removeFirst(count) }
        return Array(pending.prefix(count))
    }

    /// True once the server has closed (false on timeout); drops what it sent.
    func isClosedByPeer() -> Bool {
        while true {
            guard let more = try? fill() else { return false }
            if !more { return true }
        }
    }

    private func fill() throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let received = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if received > 0 {
            pending.append(contentsOf: chunk[..<received])
            return true
        }
        if received == 0 || errno == ECONNRESET { return false }
        throw Failure(description: "receive failed or timed out: errno \(errno)")
    }
}

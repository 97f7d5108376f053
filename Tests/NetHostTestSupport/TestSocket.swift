#if canImport(Glibc)
import Glibc
#endif

/// A blocking TCP client for tests: real sockets, bounded waits.
public final class TestSocket {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        public init(description: String) { self.description = description }
    }

    private let fd: Int32
    private var pending: [UInt8] = []

    /// Connects to host:port (IPv4 or IPv6 literal), optionally from a chosen local address.
    public init(host: String, port: Int, from source: String? = nil, timeout: Double = 5) throws {
        let isIPv6 = host.contains(":")
        fd = socket(isIPv6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket() failed: errno \(errno)") }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        do {
            if let source {
                try Self.withAddress(source, port: 0) { address, length in
                    guard bind(fd, address, length) == 0 else { throw Failure(description: "bind to \(source) failed: errno \(errno)") }
                }
            }
            try Self.withAddress(host, port: port) { address, length in
                guard connect(fd, address, length) == 0 else { throw Failure(description: "connect to \(host):\(port) failed: errno \(errno)") }
            }
        } catch {
            close(fd)
            throw error
        }
    }

    deinit { close(fd) }

    private static func withAddress<T>(_ host: String, port: Int, _ body: (UnsafePointer<sockaddr>, socklen_t) throws -> T) throws -> T {
        if host.contains(":") {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = in_port_t(UInt16(port).bigEndian)
            guard inet_pton(AF_INET6, host, &address.sin6_addr) == 1 else { throw Failure(description: "bad address \(host)") }
            return try withUnsafePointer(to: &address) {
                try $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { try body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { throw Failure(description: "bad address \(host)") }
        return try withUnsafePointer(to: &address) {
            try $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { try body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }

    /// The local port this socket connected from.
    public var localPort: Int {
        var address = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(fd, $0, &length) }
        }
        let family = address.ss_family
        return withUnsafePointer(to: &address) { pointer in
            if family == sa_family_t(AF_INET6) {
                return pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin6_port)) }
            }
            return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
        }
    }

    public func send(_ text: String) throws { try send(Array(text.utf8)) }

    public func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard sent > 0 else { throw Failure(description: "send failed: errno \(errno)") }
            offset += sent
        }
    }

    /// Reads until `delimiter`; returns the text before it. Throws on timeout or EOF.
    public func readLine() throws -> String {
        while true {
            if let index = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: pending[..<index], as: UTF8.self)
                pending.removeSubrange(...index)
                return line
            }
            guard try fill() else { throw Failure(description: "connection closed before a full line (have \(pending.count) bytes)") }
        }
    }

    /// Reads exactly `count` bytes.
    public func read(count: Int) throws -> [UInt8] {
        while pending.count < count {
            guard try fill() else { throw Failure(description: "connection closed after \(pending.count) of \(count) bytes") }
        }
        let bytes = Array(pending.prefix(count))
        pending.removeFirst(count)
        return bytes
    }

    /// Reads until the server closes; returns everything received.
    public func readToEnd() throws -> [UInt8] {
        while try fill() {}
        defer { pending = [] }
        return pending
    }

    /// True once the server has closed the connection (after draining what it sent).
    public func isClosedByPeer() throws -> Bool {
        do {
            _ = try readToEnd()
            return true
        } catch {
            return false
        }
    }

    private func fill() throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let received = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if received > 0 {
            pending.append(contentsOf: chunk[..<received])
            return true
        }
        if received == 0 { return false }
        if errno == ECONNRESET { return false }
        throw Failure(description: "receive failed or timed out: errno \(errno)")
    }
}

import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Free TCP ports on loopback, for configs that must name their ports (such as
/// proxy_port_mappings) and for the programs a test starts.
public enum FreePort {
    /// Ports handed out by this process, never handed out twice: tests run in
    /// parallel, and the kernel may offer a port again once it was released, so
    /// two tests that only asked the kernel could be given the same port.
    private static let handedOut = HandedOutPorts()

    /// The set behind a pthread lock. Not Synchronization's `Mutex`: on Linux it
    /// waits with raw futex calls, which ThreadSanitizer does not see, so it reports
    /// the accesses the mutex orders as a race.
    private final class HandedOutPorts: @unchecked Sendable {
        private let lock = NSLock()
        private var ports = Set<Int>()
        func insert(_ port: Int) -> Bool {
            lock.lock()
            defer { lock.unlock() }
            return ports.insert(port).inserted
        }
    }

    /// A TCP port that is free on both 127.0.0.1 and ::1 right now.
    ///
    /// Binds port 0 on 127.0.0.1 to let the kernel choose, checks the same port binds
    /// on ::1 too, then releases both. Another process could take the port before the
    /// test binds it; on a test machine that is rare enough.
    public static func allocate() throws -> Int {
        for _ in 0..<50 {
            let port = try bindAndRelease(host: "127.0.0.1", port: 0)
            guard (try? bindAndRelease(host: "::1", port: port)) != nil else { continue }
            let fresh = self.handedOut.insert(port)
            if fresh { return port }
        }
        throw FixtureError("no free TCP port on both 127.0.0.1 and ::1 after 50 tries")
    }

    /// Binds a TCP socket to `host:port` (port 0: the kernel picks), closes it and
    /// returns the port that was bound.
    private static func bindAndRelease(host: String, port: Int) throws -> Int {
        let address = try SocketAddressStorage(host: host, port: port)
        let fd = socket(address.family, streamSocketType, 0)
        guard fd >= 0 else { throw FixtureError("socket() failed: errno \(errno)") }
        defer { close(fd) }
        guard address.withSockAddr({ bind(fd, $0, $1) }) == 0 else {
            throw FixtureError("cannot bind \(host):\(port): errno \(errno)")
        }
        var bound = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &bound) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard ok == 0 else { throw FixtureError("getsockname() failed: errno \(errno)") }
        return SocketAddressStorage(storage: bound).port
    }
}


/// An IPv4 or IPv6 literal address and port as a `sockaddr_storage`.
public struct SocketAddressStorage: Sendable, CustomStringConvertible {
    public private(set) var storage = sockaddr_storage()

    /// Parses a literal address (`127.0.0.5`, `::1`); names are not resolved.
    public init(host: String, port: Int) throws {
        if host.contains(":") {
            var sin6 = sockaddr_in6()
            sin6.sin6_family = sa_family_t(AF_INET6)
            sin6.sin6_port = in_port_t(UInt16(truncatingIfNeeded: port)).bigEndian
            guard inet_pton(AF_INET6, host, &sin6.sin6_addr) == 1 else {
                throw FixtureError("\"\(host)\" is not an IPv6 address literal")
            }
            withUnsafeMutableBytes(of: &self.storage) { out in
                withUnsafeBytes(of: sin6) { out.copyMemory(from: $0) }
            }
        } else {
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = in_port_t(UInt16(truncatingIfNeeded: port)).bigEndian
            guard inet_pton(AF_INET, host, &sin.sin_addr) == 1 else {
                throw FixtureError("\"\(host)\" is not an IPv4 address literal")
            }
            withUnsafeMutableBytes(of: &self.storage) { out in
                withUnsafeBytes(of: sin) { out.copyMemory(from: $0) }
            }
        }
    }

    public init(storage: sockaddr_storage) {
        self.storage = storage
    }

    public var family: Int32 { Int32(self.storage.ss_family) }

    public var length: socklen_t {
        socklen_t(self.family == AF_INET6 ? MemoryLayout<sockaddr_in6>.size : MemoryLayout<sockaddr_in>.size)
    }

    public var port: Int {
        withUnsafeBytes(of: self.storage) { raw in
            // sin_port and sin6_port sit at the same offset, in network byte order.
            Int(UInt16(bigEndian: raw.loadUnaligned(fromByteOffset: 2, as: UInt16.self)))
        }
    }

    /// The address bytes: 4 for IPv4, 16 for IPv6.
    public var addressBytes: [UInt8] {
        withUnsafeBytes(of: self.storage) { raw in
            if self.family == AF_INET6 {
                return withUnsafeBytes(of: raw.loadUnaligned(as: sockaddr_in6.self).sin6_addr) { Array($0) }
            }
            return withUnsafeBytes(of: raw.loadUnaligned(as: sockaddr_in.self).sin_addr) { Array($0) }
        }
    }

    /// `127.0.0.5` or `::1`.
    public var host: String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        var bytes = self.addressBytes
        let ok = bytes.withUnsafeMutableBytes { raw in
            buffer.withUnsafeMutableBufferPointer {
                inet_ntop(self.family, raw.baseAddress, $0.baseAddress, socklen_t($0.count)) != nil
            }
        }
        guard ok else { return "?" }
        return String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public var description: String {
        self.family == AF_INET6 ? "[\(self.host)]:\(self.port)" : "\(self.host):\(self.port)"
    }

    public func withSockAddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) throws -> R) rethrows -> R {
        try withUnsafePointer(to: self.storage) { pointer in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { try body($0, self.length) }
        }
    }
}

import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Free TCP ports on loopback for the programs a test starts.
enum FreePort {
    /// Ports handed out by this process, never handed out twice: tests run in
    /// parallel, and the kernel may offer a port again once it was released.
    private static let handedOut = Locked(Set<Int>())

    /// A TCP port that is free on both 127.0.0.1 and ::1 right now.
    ///
    /// Binds port 0 on 127.0.0.1 to let the kernel choose, checks the same port binds
    /// on ::1 too, then releases both. Another process could take the port before the
    /// test binds it; on a test machine that is rare enough.
    static func allocate() throws -> Int {
        for _ in 0..<50 {
            let port = try bindAndRelease(host: "127.0.0.1", port: 0)
            guard (try? bindAndRelease(host: "::1", port: port)) != nil else { continue }
            let fresh = self.handedOut.withLock { $0.insert(port).inserted }
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

/// Waits until something listens on `host:port` (TCP), or throws after `timeout`.
///
/// On Linux it reads the kernel's socket tables (`/proc/net/tcp`, `/proc/net/tcp6`)
/// instead of connecting, so the wait opens no connection: a proxy under test would
/// otherwise forward the probe to the backend, which would see a stray connection.
/// Elsewhere it falls back to connecting (and closing at once).
/// A listener on the wildcard address (`0.0.0.0`, `::`) counts for every host.
///
/// - Parameter whileAlive: checked between polls; when it returns false the wait
///   stops early (the program that should listen has died). Its message goes into
///   the error.
func waitForPort(
    host: String,
    port: Int,
    timeout: Duration = .seconds(10),
    whileAlive: () -> String? = { nil }
) async throws {
    let address = try SocketAddressStorage(host: host, port: port)
    var died: String?
    let found = try await poll(timeout: timeout) { () -> Bool? in
        if let message = whileAlive() {
            died = message
            return false
        }
        return isListening(address) ? true : nil
    }
    if let died {
        throw FixtureError("nothing listens on \(host):\(port): \(died)")
    }
    if found == nil {
        throw FixtureError("nothing listens on \(host):\(port) after \(timeout)")
    }
}

/// Whether a TCP socket is listening on `address`; with `owner`, only a socket of
/// that process counts (tests run side by side, and another test's server may be
/// listening on the same port number on the wildcard address).
func isListening(_ address: SocketAddressStorage, ownedBy owner: pid_t? = nil) -> Bool {
    #if os(Linux)
    let tables = address.family == AF_INET ? ["/proc/net/tcp", "/proc/net/tcp6"] : ["/proc/net/tcp6"]
    let ownedInodes = owner.map(socketInodes(of:))
    var readAny = false
    for table in tables {
        guard let text = readWholeFile(table) else { continue }
        readAny = true
        if listenTable(text, containsListenerFor: address, ipv6Table: table.hasSuffix("6"), inodes: ownedInodes) { return true }
    }
    if readAny { return false }
    #endif
    return canConnect(address)
}

/// The inodes of the sockets a process has open, from its /proc/PID/fd links
/// (`socket:[12345]`).
private func socketInodes(of pid: pid_t) -> Set<Substring> {
    let directory = "/proc/\(pid)/fd"
    guard let entries = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
    var inodes: Set<Substring> = []
    for entry in entries {
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "\(directory)/\(entry)"),
              target.hasPrefix("socket:[") else { continue }
        inodes.insert(Substring(target.dropFirst("socket:[".count).dropLast()))
    }
    return inodes
}

/// Whether a `/proc/net/tcp{,6}` table shows a socket in LISTEN state (`0A`) on the
/// address's port, bound to the address itself or to the wildcard. The kernel prints
/// each 32-bit word of the address as the native integer it holds in memory (`%08X`),
/// so comparing those words with the words of our own `in_addr`/`in6_addr` needs no
/// byte swapping.
private func listenTable(
    _ text: String, containsListenerFor address: SocketAddressStorage, ipv6Table: Bool, inodes: Set<Substring>?
) -> Bool {
    let wanted = address.words
    let wildcard = [UInt32](repeating: 0, count: ipv6Table ? 4 : 1)
    for line in text.split(separator: "\n").dropFirst() {
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count > 9, fields[3] == "0A" else { continue }
        if let inodes, !inodes.contains(fields[9]) { continue }
        let local = fields[1].split(separator: ":")
        guard local.count == 2, let port = Int(local[1], radix: 16), port == address.port else { continue }
        let hex = local[0]
        var words: [UInt32] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 8, limitedBy: hex.endIndex) ?? hex.endIndex
            guard let word = UInt32(hex[index..<next], radix: 16) else { break }
            words.append(word)
            index = next
        }
        if words == wildcard { return true }
        if ipv6Table == (address.family == AF_INET6), words == wanted { return true }
    }
    return false
}

private func canConnect(_ address: SocketAddressStorage) -> Bool {
    let fd = socket(address.family, streamSocketType, 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    return address.withSockAddr { connect(fd, $0, $1) } == 0
}

/// An IPv4 or IPv6 literal address and port as a `sockaddr_storage`.
struct SocketAddressStorage: Sendable, CustomStringConvertible {
    private(set) var storage = sockaddr_storage()

    /// Parses a literal address (`127.0.0.5`, `::1`); names are not resolved.
    init(host: String, port: Int) throws {
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

    init(storage: sockaddr_storage) {
        self.storage = storage
    }

    var family: Int32 { Int32(self.storage.ss_family) }

    var length: socklen_t {
        socklen_t(self.family == AF_INET6 ? MemoryLayout<sockaddr_in6>.size : MemoryLayout<sockaddr_in>.size)
    }

    var port: Int {
        withUnsafeBytes(of: self.storage) { raw in
            // sin_port and sin6_port sit at the same offset, in network byte order.
            Int(UInt16(bigEndian: raw.loadUnaligned(fromByteOffset: 2, as: UInt16.self)))
        }
    }

    /// The address bytes: 4 for IPv4, 16 for IPv6.
    var addressBytes: [UInt8] {
        withUnsafeBytes(of: self.storage) { raw in
            if self.family == AF_INET6 {
                return withUnsafeBytes(of: raw.loadUnaligned(as: sockaddr_in6.self).sin6_addr) { Array($0) }
            }
            return withUnsafeBytes(of: raw.loadUnaligned(as: sockaddr_in.self).sin_addr) { Array($0) }
        }
    }

    /// The address as native 32-bit words, as `/proc/net/tcp*` prints them.
    fileprivate var words: [UInt32] {
        let bytes = self.addressBytes
        return stride(from: 0, to: bytes.count, by: 4).map { start in
            bytes[start..<start + 4].withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
        }
    }

    /// `127.0.0.5` or `::1`.
    var host: String {
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

    var description: String {
        self.family == AF_INET6 ? "[\(self.host)]:\(self.port)" : "\(self.host):\(self.port)"
    }

    func withSockAddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) throws -> R) rethrows -> R {
        try withUnsafePointer(to: self.storage) { pointer in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { try body($0, self.length) }
        }
    }
}

import Foundation
import SocketTestSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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
    if let listeners = TCPListeners.read(ownedBy: owner) { return listeners.contains(address) }
    #endif
    return canConnect(address)
}

/// The TCP sockets in LISTEN state, of one process or of everyone, read once for
/// several addresses: from the kernel over netlink (`SocketDiagnostics`), or where
/// that is refused from its tables (`/proc/net/tcp`, `/proc/net/tcp6`), which list
/// every socket of the network namespace; so those are scanned as bytes, and only
/// the lines in LISTEN state are looked at further. (A scan of the tables with
/// `String.split` at every poll was the largest user of the few threads the tests
/// share under ThreadSanitizer.)
struct TCPListeners {
    /// A listening socket: the 32-bit words of its address as the table prints them
    /// (one for IPv4, four for IPv6), its port, whether it is in the IPv6 table, and
    /// its inode (the same inode later is the same socket).
    struct Entry: Equatable {
        var words: [UInt32]
        var port: Int
        var ipv6Table: Bool
        var inode: Int
    }

    var entries: [Entry] = []

    /// Nil when neither table can be read (not Linux, or no /proc).
    static func read(ownedBy owner: pid_t? = nil) -> TCPListeners? {
        let inodes = owner.map(socketInodes(of:))
        if let inodes, inodes.isEmpty { return TCPListeners() }
        if let listening = SocketDiagnostics.listeningTCP() {
            return TCPListeners(entries: inodes.map { inodes in listening.filter { inodes.contains($0.inode) } } ?? listening)
        }
        return fromProcTables(inodes: inodes)
    }

    /// The same from `/proc/net/tcp` and `/proc/net/tcp6`; nil when neither can be read.
    static func fromProcTables(inodes: Set<Int>?) -> TCPListeners? {
        var listeners = TCPListeners()
        var readAny = false
        for (table, ipv6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
            guard let bytes = readWholeFileBytes(table) else { continue }
            readAny = true
            listeners.scan(bytes, ipv6Table: ipv6, inodes: inodes)
        }
        return readAny ? listeners : nil
    }

    /// Whether a listener is on the address's port, bound to the address itself or to
    /// the wildcard (an IPv4 address is also served by a listener on `::`).
    func contains(_ address: SocketAddressStorage) -> Bool {
        let wanted = address.words
        return entries.contains { entry in
            guard entry.port == address.port else { return false }
            if entry.words.allSatisfy({ $0 == 0 }) { return address.family == AF_INET || entry.ipv6Table }
            return entry.ipv6Table == (address.family == AF_INET6) && entry.words == wanted
        }
    }

    /// One table's lines after the heading: `sl local rem st ... uid timeout inode ...`,
    /// the local address as `%08X` words, a colon and the port in hex; state `0A` is LISTEN.
    private mutating func scan(_ bytes: [UInt8], ipv6Table: Bool, inodes: Set<Int>?) {
        bytes.withUnsafeBufferPointer { text in
            var lineStart = text.firstIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? text.count
            while lineStart < text.count {
                let lineEnd = text[lineStart...].firstIndex(of: UInt8(ascii: "\n")) ?? text.count
                if let entry = Self.entry(in: UnsafeBufferPointer(rebasing: text[lineStart..<lineEnd]), ipv6Table: ipv6Table, inodes: inodes) {
                    entries.append(entry)
                }
                lineStart = lineEnd + 1
            }
        }
    }

    private static func entry(in line: UnsafeBufferPointer<UInt8>, ipv6Table: Bool, inodes: Set<Int>?) -> Entry? {
        // The fields' bounds, up to the inode (field 9).
        var fields: [Range<Int>] = []
        fields.reserveCapacity(10)
        var index = 0
        while index < line.count, fields.count < 10 {
            while index < line.count, line[index] == UInt8(ascii: " ") { index += 1 }
            let start = index
            while index < line.count, line[index] != UInt8(ascii: " ") { index += 1 }
            if start < index { fields.append(start..<index) }
            // Not LISTEN: nothing more to read on this line.
            if fields.count == 4, !(fields[3].count == 2 && line[fields[3].lowerBound] == UInt8(ascii: "0")
                                     && line[fields[3].lowerBound + 1] == UInt8(ascii: "A")) { return nil }
        }
        guard fields.count == 10 else { return nil }
        guard let inode = hexOrDecimal(line, fields[9], radix: 10) else { return nil }
        if let inodes, !inodes.contains(inode) { return nil }
        let local = fields[1]
        guard let colon = line[local].firstIndex(of: UInt8(ascii: ":")),
              let port = hexOrDecimal(line, colon + 1..<local.upperBound, radix: 16) else { return nil }
        var words: [UInt32] = []
        var wordStart = local.lowerBound
        while wordStart + 8 <= colon {
            guard let word = hexOrDecimal(line, wordStart..<wordStart + 8, radix: 16) else { return nil }
            words.append(UInt32(truncatingIfNeeded: word))
            wordStart += 8
        }
        guard words.count == (ipv6Table ? 4 : 1) else { return nil }
        return Entry(words: words, port: port, ipv6Table: ipv6Table, inode: inode)
    }

    private static func hexOrDecimal(_ line: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, radix: Int) -> Int? {
        guard !range.isEmpty, range.count <= 16 else { return nil }
        var value = 0
        for byte in line[range] {
            let digit: Int
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = Int(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "A")...UInt8(ascii: "F") where radix == 16: digit = Int(byte - UInt8(ascii: "A")) + 10
            case UInt8(ascii: "a")...UInt8(ascii: "f") where radix == 16: digit = Int(byte - UInt8(ascii: "a")) + 10
            default: return nil
            }
            value = value * radix + digit
        }
        return value
    }
}

/// The inodes of the sockets a process has open, from its /proc/PID/fd links
/// (`socket:[12345]`), read with `readdir` and `readlink` (Foundation's directory
/// calls cost several times as much, and tests poll this).
func socketInodes(of pid: pid_t) -> Set<Int> {
    guard let directory = opendir("/proc/\(pid)/fd") else { return [] }
    defer { closedir(directory) }
    var inodes: Set<Int> = []
    var target = [CChar](repeating: 0, count: 64)
    let prefix = Array("socket:[".utf8)
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        guard name.first?.isNumber == true else { continue }
        let count = readlink("/proc/\(pid)/fd/\(name)", &target, target.count - 1)
        guard count > prefix.count + 1 else { continue }
        let bytes = target.prefix(count).map { UInt8(bitPattern: $0) }
        guard bytes.starts(with: prefix), bytes.last == UInt8(ascii: "]"),
              let inode = Int(String(decoding: bytes[prefix.count..<(count - 1)], as: UTF8.self)) else { continue }
        inodes.insert(inode)
    }
    return inodes
}

private func canConnect(_ address: SocketAddressStorage) -> Bool {
    let fd = socket(address.family, streamSocketType, 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    return address.withSockAddr { connect(fd, $0, $1) } == 0
}

extension SocketAddressStorage {
    /// The address as native 32-bit words, as `/proc/net/tcp*` prints them.
    fileprivate var words: [UInt32] {
        let bytes = self.addressBytes
        return stride(from: 0, to: bytes.count, by: 4).map { start in
            bytes[start..<start + 4].withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
        }
    }
}

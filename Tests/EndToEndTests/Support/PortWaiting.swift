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
func socketInodes(of pid: pid_t) -> Set<Substring> {
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

extension SocketAddressStorage {
    /// The address as native 32-bit words, as `/proc/net/tcp*` prints them.
    fileprivate var words: [UInt32] {
        let bytes = self.addressBytes
        return stride(from: 0, to: bytes.count, by: 4).map { start in
            bytes[start..<start + 4].withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
        }
    }
}

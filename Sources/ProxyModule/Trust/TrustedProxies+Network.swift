#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension TrustedProxies {
    /// One trusted host or network.
    ///
    /// Every network is kept as 128 bits: an IPv4 network `a.b.c.d/n` is stored as its
    /// IPv4-mapped form `::ffff:a.b.c.d/(96 + n)`, and an IPv4 peer is looked up as
    /// `::ffff:a.b.c.d`. So `10.0.0.0/8` and `::ffff:10.0.0.0/104` are the same network,
    /// an IPv4-mapped IPv6 peer matches IPv4 entries, an IPv4 peer matches
    /// `::ffff:0:0/96`, and `::/0` matches every IP peer (as Prosody's `util.ip` does).
    public struct Network: Sendable, Hashable, CustomStringConvertible {
        /// The network's first 64 bits, host bits cleared.
        @usableFromInline let high: UInt64
        /// The network's last 64 bits, host bits cleared.
        @usableFromInline let low: UInt64
        @usableFromInline let maskHigh: UInt64
        @usableFromInline let maskLow: UInt64
        /// Prefix length over the 128-bit form (96 + n for an IPv4 network `/n`).
        let prefixLength128: Int

        init(high: UInt64, low: UInt64, prefixLength128: Int) {
            let maskHigh: UInt64 =
                prefixLength128 <= 0 ? 0 : prefixLength128 >= 64 ? .max : .max << UInt64(64 - prefixLength128)
            let maskLow: UInt64 =
                prefixLength128 <= 64 ? 0 : prefixLength128 >= 128 ? .max : .max << UInt64(128 - prefixLength128)
            self.high = high & maskHigh
            self.low = low & maskLow
            self.maskHigh = maskHigh
            self.maskLow = maskLow
            self.prefixLength128 = prefixLength128
        }

        /// Parses a host address (`127.0.0.1`, `::1`) or a network in CIDR notation
        /// (`10.0.0.0/8`, `2001:db8::/32`, `::ffff:10.0.0.0/104`).
        ///
        /// A host address is a network of one address (`/32` or `/128`).
        ///
        /// Lenient on host bits: `192.168.1.1/24` is accepted and normalised to
        /// `192.168.1.0/24`, as Prosody users write it that way.
        ///
        /// Surrounding whitespace is ignored. Host names (`localhost` included) are
        /// rejected, not resolved: a trust decision must not depend on DNS, and
        /// Prosody's `net.util` does not resolve them either. IPv6 zone identifiers
        /// (`fe80::1%eth0`) and brackets (`[::1]`) are rejected.
        public init(parsing entry: String) throws(TrustedProxiesError) {
            func fail(_ reason: TrustedProxiesError.Reason) -> TrustedProxiesError {
                TrustedProxiesError(entry: entry, reason: reason)
            }

            let text = entry.trimmingASCIIWhitespace()
            guard !text.isEmpty else { throw fail(.empty) }

            let addressText: Substring
            let prefixText: Substring?
            if let slash = text.firstIndex(of: "/") {
                addressText = text[..<slash]
                prefixText = text[text.index(after: slash)...]
            } else {
                addressText = text
                prefixText = nil
            }

            if addressText.hasPrefix("[") || addressText.hasSuffix("]") { throw fail(.brackets) }
            if addressText.contains("%") { throw fail(.zoneIdentifier) }

            let family: TrustedProxiesError.Family
            var high: UInt64 = 0
            var low: UInt64 = 0
            if addressText.contains(":") {
                guard let (h, l) = parseIPv6(addressText) else { throw fail(.badAddress) }
                family = .ipv6
                (high, low) = (h, l)
            } else if let v4 = parseIPv4(addressText) {
                family = .ipv4
                low = Network.ipv4MappedPrefix | UInt64(v4)
            } else if looksLikeHostName(addressText) {
                throw fail(.hostName)
            } else {
                throw fail(.badAddress)
            }

            let maximum = family == .ipv4 ? 32 : 128
            var prefixLength = maximum
            if let prefixText {
                guard !prefixText.isEmpty else { throw fail(.missingPrefixLength) }
                guard prefixText.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
                    throw fail(.prefixLengthNotANumber(String(prefixText)))
                }
                guard prefixText.utf8.count <= 3, let value = Int(prefixText), value <= maximum else {
                    throw fail(.prefixLengthOutOfRange(String(prefixText), family: family))
                }
                prefixLength = value
            }

            self.init(high: high, low: low, prefixLength128: family == .ipv4 ? 96 + prefixLength : prefixLength)
        }

        /// The bits `::ffff:0:0` that put an IPv4 address in the low 32 bits of the
        /// IPv4-mapped range.
        @usableFromInline static let ipv4MappedPrefix: UInt64 = 0x0000_ffff_0000_0000

        /// Whether the 128-bit address `high:low` lies in this network.
        @inlinable
        func contains(high: UInt64, low: UInt64) -> Bool {
            (high & self.maskHigh) == self.high && (low & self.maskLow) == self.low
        }

        /// Whether this network lies inside the IPv4-mapped range, so reads best as IPv4.
        var isIPv4: Bool {
            self.prefixLength128 >= 96 && self.high == 0 && (self.low >> 32) == 0x0000_ffff
        }

        /// `10.0.0.0/8`, `2001:db8::/32`, `127.0.0.1/32`, `::1/128`.
        public var description: String {
            if self.isIPv4 {
                let v4 = UInt32(truncatingIfNeeded: self.low)
                let octets = [v4 >> 24, (v4 >> 16) & 0xff, (v4 >> 8) & 0xff, v4 & 0xff]
                return octets.map(String.init).joined(separator: ".") + "/\(self.prefixLength128 - 96)"
            }
            return formatIPv6(high: self.high, low: self.low) + "/\(self.prefixLength128)"
        }
    }
}

/// IPv4 networks first, then by address, then by prefix length.
extension TrustedProxies.Network: Comparable {
    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.isIPv4 ? 0 : 1, lhs.high, lhs.low, lhs.prefixLength128)
            < (rhs.isIPv4 ? 0 : 1, rhs.high, rhs.low, rhs.prefixLength128)
    }
}

// MARK: - Parsing and formatting addresses (configuration time only)

extension StringProtocol {
    fileprivate func trimmingASCIIWhitespace() -> Substring {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        let string = Substring(self)
        guard let first = string.firstIndex(where: { !isSpace($0) }),
            let last = string.lastIndex(where: { !isSpace($0) })
        else { return "" }
        return string[first...last]
    }
}

/// Dotted-quad IPv4 (`inet_pton` rules: exactly four decimal parts, no leading zeros).
private func parseIPv4(_ text: Substring) -> UInt32? {
    var address = in_addr()
    let ok = String(text).withCString { inet_pton(AF_INET, $0, &address) } == 1
    return ok ? UInt32(bigEndian: address.s_addr) : nil
}

/// Any textual IPv6 form `inet_pton` accepts, including `::ffff:10.0.0.1`.
private func parseIPv6(_ text: Substring) -> (UInt64, UInt64)? {
    var address = in6_addr()
    let ok = String(text).withCString { inet_pton(AF_INET6, $0, &address) } == 1
    guard ok else { return nil }
    return withUnsafeBytes(of: &address) { raw in
        (
            UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self)),
            UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        )
    }
}

/// Letters, digits, dots and hyphens with at least one letter: a name, not a number.
private func looksLikeHostName(_ text: Substring) -> Bool {
    var sawLetter = false
    for byte in text.utf8 {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"):
            sawLetter = true
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "-"), UInt8(ascii: "_"):
            continue
        default:
            return false
        }
    }
    return sawLetter
}

private func formatIPv6(high: UInt64, low: UInt64) -> String {
    var address = in6_addr()
    withUnsafeMutableBytes(of: &address) { raw in
        raw.storeBytes(of: high.bigEndian, toByteOffset: 0, as: UInt64.self)
        raw.storeBytes(of: low.bigEndian, toByteOffset: 8, as: UInt64.self)
    }
    var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
    let formatted = buffer.withUnsafeMutableBufferPointer { out in
        inet_ntop(AF_INET6, &address, out.baseAddress, socklen_t(out.count)) != nil
    }
    guard formatted else { return "?" }
    return String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

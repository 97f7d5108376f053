import NIOCore

/// The peers allowed to send a PROXY header: the `proxy_trusted_proxies` option.
///
/// Built once from the configuration's entries, each a host address (`127.0.0.1`,
/// `::1`) or a network in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`,
/// `::ffff:10.0.0.0/104`); see ``Network/init(parsing:)`` for the accepted forms.
/// Looking a peer up (``contains(_:)``, ``contains(addressBytes:)``) allocates
/// nothing, so it can run for every accepted connection.
///
/// - An empty list trusts every peer (``trustsEveryone``), as in Prosody's
///   mod_net_proxy: `proxy_trusted_proxies = {}`.
/// - Not configured at all: ``default``, the loopback addresses `127.0.0.1` and `::1`.
/// - IPv4 and IPv6 meet in the IPv4-mapped range: a peer `::ffff:10.1.2.3` matches the
///   entry `10.0.0.0/8`, and a peer `10.1.2.3` matches `::ffff:0:0/96`.
/// - Unix-domain peers have no IP address, so no entry matches them: they are
///   trusted only when the set trusts everyone. This fails closed; who may connect
///   to a unix socket is the file system's business, which this set cannot see.
///
/// Two sets holding the same networks are equal, whatever the order or spelling of
/// their entries.
public struct TrustedProxies: Sendable, Hashable, CustomStringConvertible {
    /// The trusted networks, normalised (host bits cleared), sorted, without duplicates.
    public let networks: [Network]

    /// Trusts the given networks; an empty sequence trusts everyone.
    public init(networks: some Sequence<Network>) {
        var sorted = networks.sorted()
        var index = sorted.startIndex
        while index < sorted.endIndex {
            if index > sorted.startIndex, sorted[index] == sorted[index - 1] {
                sorted.remove(at: index)
            } else {
                index += 1
            }
        }
        self.networks = sorted
    }

    /// Parses configuration entries; an empty list trusts everyone.
    ///
    /// - Throws: ``TrustedProxiesError`` for the first entry that is not an IP address
    ///   or network, naming it and why.
    public init(_ entries: some Sequence<String>) throws(TrustedProxiesError) {
        var networks: [Network] = []
        for entry in entries {
            networks.append(try Network(parsing: entry))
        }
        self.init(networks: networks)
    }

    /// `127.0.0.1` and `::1`: what `net_proxy` trusts when `proxy_trusted_proxies` is not set.
    public static let `default` = TrustedProxies(networks: [
        Network(high: 0, low: Network.ipv4MappedPrefix | 0x7f00_0001, prefixLength128: 128),
        Network(high: 0, low: 1, prefixLength128: 128),
    ])

    /// Trusts every peer: what an empty `proxy_trusted_proxies = {}` means.
    public static let everyone = TrustedProxies(networks: [])

    /// True when the list is empty: every peer may send a PROXY header, unix-domain
    /// peers included. (`::/0` trusts every IP peer but not unix-domain ones.)
    public var trustsEveryone: Bool { self.networks.isEmpty }

    /// Whether `address` may send a PROXY header. Allocates nothing.
    ///
    /// A unix-domain address is trusted only when the set ``trustsEveryone``.
    public func contains(_ address: SocketAddress) -> Bool {
        if self.trustsEveryone { return true }
        switch address {
        case .v4(let v4):
            return self.contains(ipv4: UInt32(bigEndian: v4.address.sin_addr.s_addr))
        case .v6(let v6):
            let (high, low) = withUnsafeBytes(of: v6.address.sin6_addr) { raw in
                (
                    UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self)),
                    UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
                )
            }
            return self.contains(high: high, low: low)
        case .unixDomainSocket:
            return false
        }
    }

    /// Whether the address in network byte order, 4 bytes (IPv4) or 16 bytes (IPv6),
    /// may send a PROXY header. Any other length is not an address: false, unless the
    /// set trusts everyone. Allocates nothing.
    @inlinable
    public func contains<Bytes: Collection<UInt8>>(addressBytes bytes: Bytes) -> Bool {
        if self.trustsEveryone { return true }
        switch bytes.count {
        case 4:
            var v4: UInt32 = 0
            for byte in bytes { v4 = v4 << 8 | UInt32(byte) }
            return self.contains(ipv4: v4)
        case 16:
            var high: UInt64 = 0
            var low: UInt64 = 0
            var index = 0
            for byte in bytes {
                if index < 8 { high = high << 8 | UInt64(byte) } else { low = low << 8 | UInt64(byte) }
                index += 1
            }
            return self.contains(high: high, low: low)
        default:
            return false
        }
    }

    /// Whether the IPv4 address (host byte order) is trusted.
    @usableFromInline
    func contains(ipv4: UInt32) -> Bool {
        self.contains(high: 0, low: Network.ipv4MappedPrefix | UInt64(ipv4))
    }

    /// Whether the 128-bit address `high:low` is trusted (IPv4 as `::ffff:a.b.c.d`).
    @usableFromInline
    func contains(high: UInt64, low: UInt64) -> Bool {
        if self.trustsEveryone { return true }
        for network in self.networks where network.contains(high: high, low: low) {
            return true
        }
        return false
    }

    /// `everyone`, or the networks separated by commas: `127.0.0.1/32, ::1/128`.
    public var description: String {
        self.trustsEveryone ? "everyone" : self.networks.map(\.description).joined(separator: ", ")
    }
}

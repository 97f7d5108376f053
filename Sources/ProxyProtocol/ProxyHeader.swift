/// A decoded PROXY protocol header (version 1 text or version 2 binary).
///
/// The header tells the receiver which connection a proxy relayed: its
/// address family, transport and endpoints, and (version 2 only) extra
/// information as TLVs.
public struct ProxyHeader: Sendable, Hashable {
    /// The wire format the header came in (or is to be encoded in).
    public enum Version: UInt8, Sendable, Hashable {
        /// The human-readable line, `PROXY TCP4 ...\r\n` (spec 2.1).
        case v1 = 1
        /// The binary format with the 12-byte signature (spec 2.2).
        case v2 = 2
    }

    /// The version 2 command. Version 1 headers are always `.proxy`.
    public enum Command: UInt8, Sendable, Hashable {
        /// The proxy opened the connection itself (e.g. a health check): the
        /// receiver uses the real connection endpoints.
        case local = 0x0
        /// The connection is relayed on behalf of the client described here.
        case proxy = 0x1
    }

    /// The address family (high nibble of the 14th byte of a v2 header).
    public enum AddressFamily: UInt8, Sendable, Hashable {
        case unspecified = 0x0
        case inet = 0x1
        case inet6 = 0x2
        case unix = 0x3
    }

    /// The transport protocol (low nibble of the 14th byte of a v2 header).
    public enum TransportProtocol: UInt8, Sendable, Hashable {
        case unspecified = 0x0
        /// SOCK_STREAM: TCP or a UNIX stream socket.
        case stream = 0x1
        /// SOCK_DGRAM: UDP or a UNIX datagram socket.
        case datagram = 0x2
    }

    /// An address with its port.
    public struct Endpoint<Address: Sendable & Hashable>: Sendable, Hashable {
        public var address: Address
        public var port: UInt16

        public init(_ address: Address, port: UInt16) {
            self.address = address
            self.port = port
        }
    }

    /// The source and destination carried by the header.
    public enum Addresses: Sendable, Hashable {
        /// No address information (v1 `UNKNOWN`, v2 `AF_UNSPEC`, or a v2
        /// LOCAL header whose address block could not be read).
        case unspecified
        case inet(source: Endpoint<IPv4Address>, destination: Endpoint<IPv4Address>)
        case inet6(source: Endpoint<IPv6Address>, destination: Endpoint<IPv6Address>)
        /// `sun_path` bytes of each side (at most 108). A path is cut at its
        /// first NUL; an abstract-namespace address (leading NUL) keeps its
        /// leading NUL and loses only its trailing NUL padding.
        case unix(source: [UInt8], destination: [UInt8])

        /// The family these addresses belong to.
        public var family: AddressFamily {
            switch self {
            case .unspecified: .unspecified
            case .inet: .inet
            case .inet6: .inet6
            case .unix: .unix
            }
        }
    }

    public var version: Version
    public var command: Command
    public var transport: TransportProtocol
    public var addresses: Addresses
    /// Version 2 TLVs in wire order (always empty for version 1).
    public var tlvs: [ProxyTLV]

    public init(
        version: Version = .v2,
        command: Command = .proxy,
        transport: TransportProtocol = .stream,
        addresses: Addresses,
        tlvs: [ProxyTLV] = []
    ) {
        self.version = version
        self.command = command
        self.transport = transport
        self.addresses = addresses
        self.tlvs = tlvs
    }

    /// The address family, derived from `addresses`.
    public var family: AddressFamily { addresses.family }
}

// MARK: - Convenience

extension ProxyHeader {
    /// True when the receiver must keep the real connection's endpoints, as
    /// the spec demands for LOCAL, v1 `UNKNOWN` and `UNSPEC` family or
    /// transport; also for UNIX sockets, which carry no IP endpoint.
    public var usesRealConnectionAddresses: Bool {
        if command == .local || transport == .unspecified { return true }
        switch addresses {
        case .unspecified, .unix: return true
        case .inet, .inet6: return false
        }
    }

    /// The source address as text (dotted quad, RFC 5952 IPv6, or the UNIX
    /// path with an abstract name shown as `@name`), nil when unspecified.
    public var sourceAddress: String? {
        switch addresses {
        case .unspecified: nil
        case .inet(let source, _): source.address.description
        case .inet6(let source, _): source.address.description
        case .unix(let source, _): Self.unixPathText(source)
        }
    }

    /// The destination address as text; see `sourceAddress`.
    public var destinationAddress: String? {
        switch addresses {
        case .unspecified: nil
        case .inet(_, let destination): destination.address.description
        case .inet6(_, let destination): destination.address.description
        case .unix(_, let destination): Self.unixPathText(destination)
        }
    }

    /// The source port, nil for UNIX and unspecified addresses.
    public var sourcePort: UInt16? {
        switch addresses {
        case .inet(let source, _): source.port
        case .inet6(let source, _): source.port
        case .unspecified, .unix: nil
        }
    }

    /// The destination port, nil for UNIX and unspecified addresses.
    public var destinationPort: UInt16? {
        switch addresses {
        case .inet(_, let destination): destination.port
        case .inet6(_, let destination): destination.port
        case .unspecified, .unix: nil
        }
    }

    /// The first TLV of the given type.
    public func firstTLV(ofType type: UInt8) -> ProxyTLV? {
        tlvs.first { $0.type == type }
    }

    /// PP2_TYPE_AUTHORITY (SNI or host name), if present.
    public var authority: String? {
        guard let tlv = firstTLV(ofType: ProxyTLV.TypeCode.authority),
              case .authority(let text) = tlv.decoded else { return nil }
        return text
    }

    /// PP2_TYPE_ALPN bytes, if present.
    public var alpn: [UInt8]? { firstTLV(ofType: ProxyTLV.TypeCode.alpn)?.value }

    /// PP2_TYPE_UNIQUE_ID bytes, if present.
    public var uniqueID: [UInt8]? { firstTLV(ofType: ProxyTLV.TypeCode.uniqueID)?.value }

    /// PP2_TYPE_SSL, if present and well formed.
    public var ssl: ProxySSLInfo? {
        guard let tlv = firstTLV(ofType: ProxyTLV.TypeCode.ssl),
              case .ssl(let info) = tlv.decoded else { return nil }
        return info
    }

    /// PP2_TYPE_NETNS (network namespace name), if present.
    public var netns: String? {
        guard let tlv = firstTLV(ofType: ProxyTLV.TypeCode.netns),
              case .netns(let name) = tlv.decoded else { return nil }
        return name
    }

    /// The PP2_TYPE_CRC32C value, if present (the parser has verified it).
    public var crc32c: UInt32? {
        guard let tlv = firstTLV(ofType: ProxyTLV.TypeCode.crc32c),
              case .crc32c(let value) = tlv.decoded else { return nil }
        return value
    }

    static func unixPathText(_ path: [UInt8]) -> String {
        if path.first == 0 {
            return "@" + String(decoding: path.dropFirst(), as: UTF8.self)
        }
        return String(decoding: path, as: UTF8.self)
    }
}

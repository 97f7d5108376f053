/// The human-readable header (spec 2.1), read one byte at a time:
///
///     PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n
///     PROXY TCP6 2001:db8::1 2001:db8::2 56324 443\r\n
///     PROXY UNKNOWN\r\n
///     PROXY UNKNOWN <ignored>\r\n
///
/// Each byte is examined exactly once, in order; `offset` remembers how far
/// that got, so the next call starts where the last one stopped. A byte that
/// breaks the grammar throws at once, without waiting for the CRLF.
struct V1Parser: Sendable {
    private enum Stage: Sendable {
        case signature  // "PROXY "
        case keyword  // "TCP4 ", "TCP6 ", "UNKNOWN"
        case afterUnknown  // ' ' or CR after UNKNOWN
        case unknownTail  // ignored until CR
        case sourceAddress
        case destinationAddress
        case sourcePort
        case destinationPort
        case lineFeed  // CR seen, LF must follow
    }

    private enum Keyword: Sendable {
        case tcp  // "TCP", then '4' or '6'
        case tcp4
        case tcp6
        case unknown
    }

    private static let signature: StaticString = "PROXY "
    private static let unknown: StaticString = "UNKNOWN"
    private static let tcp: StaticString = "TCP"

    /// Bytes examined so far; the next call resumes here.
    private(set) var offset = 0
    private var stage = Stage.signature
    private var keyword = Keyword.tcp
    /// Index of the first byte of the current field.
    private var fieldStart = 0
    private var v4 = IPv4Scanner()
    private var v6 = IPv6Scanner()
    private var port = DecimalScanner.port()
    private var sourceV4 = IPv4Address(0), destinationV4 = IPv4Address(0)
    private var sourceV6 = IPv6Address(high: 0, low: 0), destinationV6 = IPv6Address(high: 0, low: 0)
    private var sourcePort: UInt16 = 0, destinationPort: UInt16 = 0

    init() {}

    mutating func parse(_ bytes: UnsafeRawBufferPointer) throws(ProxyHeaderError) -> ProxyHeaderParser.ParseResult {
        while offset < bytes.count {
            let byte = bytes[offset]
            let done = try step(byte)
            offset += 1
            if done {
                return .complete(header(), consumed: offset)
            }
            if offset >= ProxyHeaderParser.v1MaximumLength {
                throw ProxyHeaderError(.v1LineTooLong)
            }
        }
        return .needMoreData
    }

    /// Examines the byte at `offset`; true when it completes the header.
    private mutating func step(_ byte: UInt8) throws(ProxyHeaderError) -> Bool {
        switch stage {
        case .signature:
            guard byte == Self.signature.utf8Start[offset] else { throw ProxyHeaderError(.badSignature(offset: offset)) }
            if offset == Self.signature.utf8CodeUnitCount - 1 {
                stage = .keyword
                fieldStart = offset + 1
            }

        case .keyword:
            try stepKeyword(byte, index: offset - fieldStart)

        case .afterUnknown:
            switch byte {
            case UInt8(ascii: " "): stage = .unknownTail
            case UInt8(ascii: "\r"): stage = .lineFeed
            case UInt8(ascii: "\n"): throw syntax(.loneLineFeed)
            default: throw ProxyHeaderError(.unknownV1Protocol(offset: offset))
            }

        case .unknownTail:
            switch byte {
            case UInt8(ascii: "\r"): stage = .lineFeed
            case UInt8(ascii: "\n"): throw syntax(.loneLineFeed)
            default: break
            }

        case .sourceAddress, .destinationAddress:
            try stepAddress(byte)

        case .sourcePort, .destinationPort:
            try stepPort(byte)

        case .lineFeed:
            guard byte == UInt8(ascii: "\n") else { throw syntax(.loneCarriageReturn) }
            return true
        }
        return false
    }

    private mutating func stepKeyword(_ byte: UInt8, index: Int) throws(ProxyHeaderError) {
        let bad = ProxyHeaderError(.unknownV1Protocol(offset: offset))
        if index == 0 {
            switch byte {
            case UInt8(ascii: "T"): keyword = .tcp
            case UInt8(ascii: "U"): keyword = .unknown
            default: throw bad
            }
            return
        }
        switch keyword {
        case .unknown:
            guard byte == Self.unknown.utf8Start[index] else { throw bad }
            if index == Self.unknown.utf8CodeUnitCount - 1 { stage = .afterUnknown }
        case .tcp:
            if index < Self.tcp.utf8CodeUnitCount {
                guard byte == Self.tcp.utf8Start[index] else { throw bad }
                return
            }
            switch byte {
            case UInt8(ascii: "4"): keyword = .tcp4
            case UInt8(ascii: "6"): keyword = .tcp6
            default: throw bad
            }
        case .tcp4, .tcp6:
            switch byte {
            case UInt8(ascii: " "): startField(.sourceAddress)
            case UInt8(ascii: "\r"): throw syntax(.lineEndsEarly)
            case UInt8(ascii: "\n"): throw syntax(.loneLineFeed)
            default: throw bad
            }
        }
    }

    private mutating func startField(_ next: Stage) {
        stage = next
        fieldStart = offset + 1
        v4 = IPv4Scanner()
        v6 = IPv6Scanner()
        port = DecimalScanner.port()
    }

    private var side: ProxyHeaderError.Side {
        switch stage {
        case .sourceAddress, .sourcePort: .source
        default: .destination
        }
    }

    private mutating func stepAddress(_ byte: UInt8) throws(ProxyHeaderError) {
        let ipv6 = keyword == .tcp6
        switch byte {
        case UInt8(ascii: " "):
            guard offset > fieldStart else { throw syntax(.expectedOneSpace) }
            let badAddress = ProxyHeaderError(.badV1Address(side, ipv6: ipv6, offset: offset))
            if ipv6 {
                guard let address = v6.finish() else { throw badAddress }
                if stage == .sourceAddress { sourceV6 = address } else { destinationV6 = address }
            } else {
                guard let address = v4.finish() else { throw badAddress }
                if stage == .sourceAddress { sourceV4 = address } else { destinationV4 = address }
            }
            startField(stage == .sourceAddress ? .destinationAddress : .sourcePort)
        case UInt8(ascii: "\r"):
            throw syntax(.lineEndsEarly)
        case UInt8(ascii: "\n"):
            throw syntax(.loneLineFeed)
        default:
            let accepted = ipv6 ? v6.feed(byte) : v4.feed(byte)
            guard accepted else { throw ProxyHeaderError(.badV1Address(side, ipv6: ipv6, offset: offset)) }
        }
    }

    private mutating func stepPort(_ byte: UInt8) throws(ProxyHeaderError) {
        let isLast = stage == .destinationPort
        switch byte {
        case UInt8(ascii: " ") where !isLast, UInt8(ascii: "\r") where isLast:
            guard offset > fieldStart else {
                throw syntax(byte == UInt8(ascii: " ") ? .expectedOneSpace : .lineEndsEarly)
            }
            // A port the scanner accepted is in range.
            let value = UInt16(truncatingIfNeeded: port.finish() ?? 0)
            if isLast {
                destinationPort = value
                stage = .lineFeed
            } else {
                sourcePort = value
                startField(.destinationPort)
            }
        case UInt8(ascii: " "):
            throw syntax(offset > fieldStart ? .expectedLineEnd : .expectedOneSpace)
        case UInt8(ascii: "\r"):
            throw syntax(.lineEndsEarly)
        case UInt8(ascii: "\n"):
            throw syntax(.loneLineFeed)
        default:
            guard port.feed(byte) else { throw ProxyHeaderError(.badV1Port(side, offset: offset)) }
        }
    }

    private func syntax(_ problem: ProxyHeaderError.V1SyntaxProblem) -> ProxyHeaderError {
        ProxyHeaderError(.v1Syntax(problem, offset: offset))
    }

    private func header() -> ProxyHeader {
        let addresses: ProxyHeader.Addresses
        switch keyword {
        case .tcp4:
            addresses = .inet(
                source: .init(sourceV4, port: sourcePort), destination: .init(destinationV4, port: destinationPort))
        case .tcp6:
            addresses = .inet6(
                source: .init(sourceV6, port: sourcePort), destination: .init(destinationV6, port: destinationPort))
        case .unknown, .tcp:
            addresses = .unspecified
        }
        return ProxyHeader(
            version: .v1, command: .proxy,
            transport: addresses == .unspecified ? .unspecified : .stream,
            addresses: addresses)
    }
}

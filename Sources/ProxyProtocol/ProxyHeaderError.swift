/// Why some bytes are not a valid PROXY protocol header (or why a header
/// cannot be encoded).
///
/// `reason` is a short stable code, fit for a metrics label; `description`
/// says what was wrong and where.
public struct ProxyHeaderError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A stable short code for the kind of error.
    public struct Reason: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The input ended before the header was complete.
        public static let truncated = Reason(rawValue: "truncated")
        /// The bytes do not start with `PROXY ` nor with the v2 signature.
        public static let badSignature = Reason(rawValue: "badSignature")
        /// A v2 version nibble other than 2.
        public static let badVersion = Reason(rawValue: "badVersion")
        /// A v2 command other than LOCAL or PROXY.
        public static let badCommand = Reason(rawValue: "badCommand")
        /// An unknown v1 protocol or v2 family/transport.
        public static let badFamily = Reason(rawValue: "badFamily")
        /// A malformed v1 address, or a v2 address block longer than the header.
        public static let badAddress = Reason(rawValue: "badAddress")
        /// A malformed v1 port.
        public static let badPort = Reason(rawValue: "badPort")
        /// A v1 line that breaks the grammar otherwise (spacing, lone CR/LF, missing or extra fields).
        public static let badSyntax = Reason(rawValue: "badSyntax")
        /// A v1 line without CRLF in 107 bytes, or a v2 header over the configured maximum.
        public static let tooLong = Reason(rawValue: "tooLong")
        /// The PP2_TYPE_CRC32C value does not match the header.
        public static let crcMismatch = Reason(rawValue: "crcMismatch")
        /// A malformed TLV.
        public static let badTLV = Reason(rawValue: "badTLV")
        /// The encoder cannot express a header in the requested format.
        public static let unencodable = Reason(rawValue: "unencodable")
    }

    enum Side: Sendable, Hashable {
        case source, destination
    }

    enum V1SyntaxProblem: Sendable, Hashable {
        case expectedOneSpace
        case lineEndsEarly
        case loneCarriageReturn
        case loneLineFeed
        case expectedLineEnd
    }

    enum TLVProblem: Error, Sendable, Hashable {
        case headerTruncated(available: Int)
        case overrun(length: Int, available: Int)
        case wrongLength(actual: Int, expected: Int)
        case tooLong(actual: Int, maximum: Int)
        case invalidUTF8
        case duplicateChecksum
        case sslTooShort(actual: Int)
        case badSubTLV(type: UInt8, TLVProblemDetail)
    }

    /// A sub-TLV problem (kept flat so `TLVProblem` is not recursive).
    enum TLVProblemDetail: Sendable, Hashable {
        case headerTruncated(available: Int)
        case overrun(length: Int, available: Int)
        case invalidUTF8
    }

    enum Problem: Sendable, Hashable {
        case truncated(received: Int)
        case badSignature(offset: Int)
        case badVersion(UInt8)
        case badCommand(UInt8)
        case unknownV1Protocol(offset: Int)
        case unknownV2Family(UInt8)
        case badV1Address(Side, ipv6: Bool, offset: Int)
        case addressBlockExceedsLength(family: UInt8, needed: Int, declared: Int)
        case badV1Port(Side, offset: Int)
        case v1Syntax(V1SyntaxProblem, offset: Int)
        case v1LineTooLong
        case v2TooLong(length: Int, maximum: Int)
        case crcMismatch(received: UInt32, computed: UInt32)
        case badTLV(TLVProblem, type: UInt8, offset: Int)
        case unencodable(String)
    }

    let problem: Problem

    init(_ problem: Problem) {
        self.problem = problem
    }

    /// The error a caller reports when the input ends (the peer closed, or
    /// a timeout fired) after `received` bytes of an incomplete header.
    public static func truncated(received: Int) -> ProxyHeaderError {
        ProxyHeaderError(.truncated(received: received))
    }

    public var reason: Reason {
        switch problem {
        case .truncated: .truncated
        case .badSignature: .badSignature
        case .badVersion: .badVersion
        case .badCommand: .badCommand
        case .unknownV1Protocol, .unknownV2Family: .badFamily
        case .badV1Address, .addressBlockExceedsLength: .badAddress
        case .badV1Port: .badPort
        case .v1Syntax: .badSyntax
        case .v1LineTooLong, .v2TooLong: .tooLong
        case .crcMismatch: .crcMismatch
        case .badTLV: .badTLV
        case .unencodable: .unencodable
        }
    }

    /// The offset of the offending byte from the start of the header, when
    /// one byte is to blame.
    public var offset: Int? {
        switch problem {
        case .badSignature(let offset), .unknownV1Protocol(let offset), .badV1Address(_, _, let offset),
            .badV1Port(_, let offset), .v1Syntax(_, let offset), .badTLV(_, _, let offset):
            offset
        case .badVersion, .badCommand: 12
        case .unknownV2Family: 13
        case .v1LineTooLong: 106
        case .truncated, .addressBlockExceedsLength, .v2TooLong, .crcMismatch, .unencodable: nil
        }
    }

    public var description: String {
        switch problem {
        case .truncated(let received):
            return "input ended after \(received) bytes, before the PROXY header was complete"
        case .badSignature(let offset):
            return "byte \(offset) does not continue a PROXY protocol signature (\"PROXY \" or the v2 binary signature)"
        case .badVersion(let byte):
            return "PROXY v2: version \(byte >> 4) in byte 12 (0x\(hex(byte))), only version 2 is defined"
        case .badCommand(let byte):
            return "PROXY v2: command \(byte & 0xF) in byte 12 (0x\(hex(byte))) is neither LOCAL (0) nor PROXY (1)"
        case .unknownV1Protocol(let offset):
            return "PROXY v1: unknown protocol at byte \(offset), expected TCP4, TCP6 or UNKNOWN"
        case .unknownV2Family(let byte):
            return "PROXY v2: family/transport byte 0x\(hex(byte)) is undefined (family 0-3, transport 0-2)"
        case .badV1Address(let side, let ipv6, let offset):
            let form = ipv6 ? "an IPv6 address of exactly 128 bits" : "a canonical IPv4 dotted quad"
            return "PROXY v1: \(side) address is not \(form) (byte \(offset))"
        case .addressBlockExceedsLength(let family, let needed, let declared):
            return "PROXY v2: family 0x\(hex(family)) needs a \(needed)-byte address block but the header declares \(declared) bytes"
        case .badV1Port(let side, let offset):
            return "PROXY v1: \(side) port is not a decimal number 0-65535 without leading zeros (byte \(offset))"
        case .v1Syntax(let problem, let offset):
            let what =
                switch problem {
                case .expectedOneSpace: "expected exactly one space between fields"
                case .lineEndsEarly: "the line ends before all fields were given"
                case .loneCarriageReturn: "CR not followed by LF"
                case .loneLineFeed: "LF without a preceding CR"
                case .expectedLineEnd: "expected CRLF after the destination port"
                }
            return "PROXY v1: \(what) (byte \(offset))"
        case .v1LineTooLong:
            return "PROXY v1: no CRLF within the first \(ProxyHeaderParser.v1MaximumLength) bytes"
        case .v2TooLong(let length, let maximum):
            return "PROXY v2: header of \(length) bytes exceeds the limit of \(maximum) bytes"
        case .crcMismatch(let received, let computed):
            return "PROXY v2: CRC32C mismatch, header says 0x\(hex(received)), computed 0x\(hex(computed))"
        case .badTLV(let problem, let type, let offset):
            return "PROXY v2: TLV 0x\(hex(type)) (\(ProxyTLV.typeName(type))) at byte \(offset): \(problem.text)"
        case .unencodable(let why):
            return "cannot encode PROXY header: \(why)"
        }
    }
}

extension ProxyHeaderError.TLVProblem {
    var text: String {
        switch self {
        case .headerTruncated(let available):
            "only \(available) bytes left, a TLV needs 3 for type and length"
        case .overrun(let length, let available):
            "declares \(length) value bytes but only \(available) remain in the header"
        case .wrongLength(let actual, let expected):
            "value is \(actual) bytes, expected \(expected)"
        case .tooLong(let actual, let maximum):
            "value is \(actual) bytes, at most \(maximum) allowed"
        case .invalidUTF8:
            "value is not valid UTF-8"
        case .duplicateChecksum:
            "a second CRC32C TLV"
        case .sslTooShort(let actual):
            "value is \(actual) bytes, the SSL client and verify fields need 5"
        case .badSubTLV(let type, let detail):
            "sub-TLV 0x\(hex(type)) (\(ProxyTLV.typeName(type, inSSL: true))): " + detail.text
        }
    }
}

extension ProxyHeaderError.TLVProblemDetail {
    var text: String {
        switch self {
        case .headerTruncated(let available): "only \(available) bytes left, a TLV needs 3 for type and length"
        case .overrun(let length, let available): "declares \(length) value bytes but only \(available) remain"
        case .invalidUTF8: "value is not valid UTF-8"
        }
    }
}

extension ProxyHeaderError.Side: CustomStringConvertible {
    var description: String {
        switch self {
        case .source: "source"
        case .destination: "destination"
        }
    }
}

func hex<T: FixedWidthInteger & UnsignedInteger>(_ value: T) -> String {
    let digits = String(value, radix: 16, uppercase: true)
    let width = T.bitWidth / 4
    return String(repeating: "0", count: max(0, width - digits.count)) + digits
}

/// One type-length-value item of a PROXY v2 header (spec 2.2), kept raw with
/// a decoded view.
public struct ProxyTLV: Sendable, Hashable {
    /// The registered type codes (spec 2.2).
    public enum TypeCode {
        public static let alpn: UInt8 = 0x01
        public static let authority: UInt8 = 0x02
        public static let crc32c: UInt8 = 0x03
        public static let noop: UInt8 = 0x04
        public static let uniqueID: UInt8 = 0x05
        public static let ssl: UInt8 = 0x20
        public static let sslVersion: UInt8 = 0x21
        public static let sslCommonName: UInt8 = 0x22
        public static let sslCipher: UInt8 = 0x23
        public static let sslSignatureAlgorithm: UInt8 = 0x24
        public static let sslKeyAlgorithm: UInt8 = 0x25
        public static let netns: UInt8 = 0x30
        /// Reserved for application-specific data.
        public static let custom: ClosedRange<UInt8> = 0xE0...0xEF
        /// Reserved for temporary experimental use.
        public static let experimental: ClosedRange<UInt8> = 0xF0...0xF7
        /// Reserved for future use.
        public static let future: ClosedRange<UInt8> = 0xF8...0xFF
    }

    /// The most bytes a PP2_TYPE_UNIQUE_ID may hold.
    public static let maximumUniqueIDLength = 128

    /// A typed view of a TLV.
    public enum Decoded: Sendable, Hashable {
        /// PP2_TYPE_ALPN: the negotiated protocol, e.g. `h2`.
        case alpn([UInt8])
        /// PP2_TYPE_AUTHORITY: the host name (SNI), UTF-8.
        case authority(String)
        /// PP2_TYPE_CRC32C: the header checksum.
        case crc32c(UInt32)
        /// PP2_TYPE_NOOP: padding, to be ignored.
        case noop
        /// PP2_TYPE_UNIQUE_ID: up to 128 opaque bytes naming the connection.
        case uniqueID([UInt8])
        /// PP2_TYPE_SSL: TLS details of the client connection.
        case ssl(ProxySSLInfo)
        /// PP2_TYPE_NETNS: the network namespace name.
        case netns(String)
        /// 0xE0...0xEF, application specific.
        case custom(type: UInt8, value: [UInt8])
        /// 0xF0...0xF7, experimental.
        case experimental(type: UInt8, value: [UInt8])
        /// 0xF8...0xFF, reserved for future use.
        case future(type: UInt8, value: [UInt8])
        /// Any other type, not registered by the spec.
        case unassigned(type: UInt8, value: [UInt8])
        /// A registered type whose value breaks its rules. The parser rejects
        /// such TLVs, so only hand-made ones decode to this.
        case malformed(type: UInt8, value: [UInt8])
    }

    public var type: UInt8
    public var value: [UInt8]

    public init(type: UInt8, value: [UInt8]) {
        self.type = type
        self.value = value
    }

    /// Builds the raw TLV for a decoded value.
    public init(_ decoded: Decoded) {
        switch decoded {
        case .alpn(let bytes): self.init(type: TypeCode.alpn, value: bytes)
        case .authority(let text): self.init(type: TypeCode.authority, value: Array(text.utf8))
        case .crc32c(let value): self.init(type: TypeCode.crc32c, value: bigEndianBytes(value))
        case .noop: self.init(type: TypeCode.noop, value: [])
        case .uniqueID(let bytes): self.init(type: TypeCode.uniqueID, value: bytes)
        case .ssl(let info): self.init(type: TypeCode.ssl, value: info.encodedValue)
        case .netns(let name): self.init(type: TypeCode.netns, value: Array(name.utf8))
        case .custom(let type, let value), .experimental(let type, let value), .future(let type, let value),
            .unassigned(let type, let value), .malformed(let type, let value):
            self.init(type: type, value: value)
        }
    }

    /// The typed view of this TLV.
    public var decoded: Decoded {
        do {
            return try decode()
        } catch {
            return .malformed(type: type, value: value)
        }
    }

    /// Checks a value in place against the rules of its type, the same rules
    /// (and errors) as `decode()`, without building the decoded value: the parser
    /// validates every TLV this way, so a header allocates only its values' bytes.
    static func validate(type: UInt8, value: UnsafeRawBufferPointer) throws(ProxyHeaderError.TLVProblem) {
        switch type {
        case TypeCode.authority, TypeCode.netns:
            guard isValidUTF8(value) else { throw .invalidUTF8 }
        case TypeCode.crc32c:
            guard value.count == 4 else { throw .wrongLength(actual: value.count, expected: 4) }
        case TypeCode.uniqueID:
            guard value.count <= Self.maximumUniqueIDLength else {
                throw .tooLong(actual: value.count, maximum: Self.maximumUniqueIDLength)
            }
        case TypeCode.ssl:
            try ProxySSLInfo.validate(value)
        default:
            break
        }
    }

    /// Decodes the value, throwing if it breaks the rules of its type. A parsed
    /// header holds no malformed TLV: the parser has checked each with `validate`.
    func decode() throws(ProxyHeaderError.TLVProblem) -> Decoded {
        switch type {
        case TypeCode.alpn:
            return .alpn(value)
        case TypeCode.authority:
            return .authority(try utf8String(value))
        case TypeCode.crc32c:
            guard value.count == 4 else { throw .wrongLength(actual: value.count, expected: 4) }
            return .crc32c(value.withUnsafeBytes { readBigEndianUInt32($0, at: 0) })
        case TypeCode.noop:
            return .noop
        case TypeCode.uniqueID:
            guard value.count <= Self.maximumUniqueIDLength else {
                throw .tooLong(actual: value.count, maximum: Self.maximumUniqueIDLength)
            }
            return .uniqueID(value)
        case TypeCode.ssl:
            return .ssl(try ProxySSLInfo(value: value))
        case TypeCode.netns:
            return .netns(try utf8String(value))
        case TypeCode.custom:
            return .custom(type: type, value: value)
        case TypeCode.experimental:
            return .experimental(type: type, value: value)
        case TypeCode.future:
            return .future(type: type, value: value)
        default:
            return .unassigned(type: type, value: value)
        }
    }

    /// The spec's name for a type code, for error messages.
    static func typeName(_ type: UInt8, inSSL: Bool = false) -> String {
        if inSSL {
            switch type {
            case TypeCode.sslVersion: return "SSL_VERSION"
            case TypeCode.sslCommonName: return "SSL_CN"
            case TypeCode.sslCipher: return "SSL_CIPHER"
            case TypeCode.sslSignatureAlgorithm: return "SSL_SIG_ALG"
            case TypeCode.sslKeyAlgorithm: return "SSL_KEY_ALG"
            default: break
            }
        }
        switch type {
        case TypeCode.alpn: return "ALPN"
        case TypeCode.authority: return "AUTHORITY"
        case TypeCode.crc32c: return "CRC32C"
        case TypeCode.noop: return "NOOP"
        case TypeCode.uniqueID: return "UNIQUE_ID"
        case TypeCode.ssl: return "SSL"
        case TypeCode.netns: return "NETNS"
        case TypeCode.custom: return "custom"
        case TypeCode.experimental: return "experimental"
        case TypeCode.future: return "future"
        default: return "unassigned"
        }
    }
}

/// Walks a run of TLVs in `bytes[range]`, calling `body` with each type and
/// value range; throws on a TLV that does not fit. No allocation.
@inline(__always)
func forEachTLV(
    in bytes: UnsafeRawBufferPointer,
    _ range: Range<Int>,
    _ body: (_ type: UInt8, _ start: Int, _ value: Range<Int>) throws(ProxyHeaderError) -> Void
) throws(ProxyHeaderError) {
    var offset = range.lowerBound
    while offset < range.upperBound {
        let available = range.upperBound - offset
        guard available >= 3 else {
            throw ProxyHeaderError(.badTLV(.headerTruncated(available: available), type: bytes[offset], offset: offset))
        }
        let type = bytes[offset]
        let length = Int(readBigEndianUInt16(bytes, at: offset + 1))
        guard length <= available - 3 else {
            throw ProxyHeaderError(.badTLV(.overrun(length: length, available: available - 3), type: type, offset: offset))
        }
        try body(type, offset, offset + 3..<offset + 3 + length)
        offset += 3 + length
    }
}

@inline(__always)
func readBigEndianUInt16(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> UInt16 {
    UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
}

@inline(__always)
func readBigEndianUInt32(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> UInt32 {
    UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16 | UInt32(bytes[offset + 2]) << 8
        | UInt32(bytes[offset + 3])
}

func bigEndianBytes(_ value: UInt32) -> [UInt8] {
    [UInt8(truncatingIfNeeded: value >> 24), UInt8(truncatingIfNeeded: value >> 16),
     UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value)]
}

/// Whether the bytes are UTF-8 without invalid sequences; allocates nothing.
func isValidUTF8<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> Bool {
    !transcode(bytes.makeIterator(), from: UTF8.self, to: UTF32.self, stoppingOnError: true) { _ in }
}

/// Decodes UTF-8 strictly: invalid sequences are an error, not U+FFFD.
func utf8String(_ bytes: [UInt8]) throws(ProxyHeaderError.TLVProblem) -> String {
    guard isValidUTF8(bytes) else { throw .invalidUTF8 }
    return String(decoding: bytes, as: UTF8.self)
}

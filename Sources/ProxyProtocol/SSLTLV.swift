/// The value of a PP2_TYPE_SSL TLV (spec 2.2.6): client flags, the
/// certificate verification result, and sub-TLVs.
public struct ProxySSLInfo: Sendable, Hashable {
    /// The `client` bit field.
    public struct ClientFlags: OptionSet, Sendable, Hashable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }

        /// PP2_CLIENT_SSL: the client connected over SSL/TLS.
        public static let ssl = ClientFlags(rawValue: 0x01)
        /// PP2_CLIENT_CERT_CONN: the client sent a certificate on this connection.
        public static let certificateOnConnection = ClientFlags(rawValue: 0x02)
        /// PP2_CLIENT_CERT_SESS: the client sent a certificate in this TLS session.
        public static let certificateInSession = ClientFlags(rawValue: 0x04)
    }

    public var client: ClientFlags
    /// Zero when the client presented a certificate that was verified.
    public var verify: UInt32
    /// The nested TLVs in wire order, raw.
    public var subTLVs: [ProxyTLV]

    public init(client: ClientFlags, verify: UInt32, subTLVs: [ProxyTLV] = []) {
        self.client = client
        self.verify = verify
        self.subTLVs = subTLVs
    }

    /// Builds the sub-TLVs from the given strings, in spec order.
    public init(
        client: ClientFlags,
        verify: UInt32,
        version: String? = nil,
        commonName: String? = nil,
        cipher: String? = nil,
        signatureAlgorithm: String? = nil,
        keyAlgorithm: String? = nil
    ) {
        var subTLVs: [ProxyTLV] = []
        let fields: [(UInt8, String?)] = [
            (ProxyTLV.TypeCode.sslVersion, version), (ProxyTLV.TypeCode.sslCommonName, commonName),
            (ProxyTLV.TypeCode.sslCipher, cipher), (ProxyTLV.TypeCode.sslSignatureAlgorithm, signatureAlgorithm),
            (ProxyTLV.TypeCode.sslKeyAlgorithm, keyAlgorithm),
        ]
        for case (let type, let text?) in fields {
            subTLVs.append(ProxyTLV(type: type, value: Array(text.utf8)))
        }
        self.init(client: client, verify: verify, subTLVs: subTLVs)
    }

    /// PP2_SUBTYPE_SSL_VERSION, e.g. `TLSv1.3`.
    public var version: String? { string(ProxyTLV.TypeCode.sslVersion) }
    /// PP2_SUBTYPE_SSL_CN: the client certificate's Common Name.
    public var commonName: String? { string(ProxyTLV.TypeCode.sslCommonName) }
    /// PP2_SUBTYPE_SSL_CIPHER, e.g. `ECDHE-RSA-AES128-GCM-SHA256`.
    public var cipher: String? { string(ProxyTLV.TypeCode.sslCipher) }
    /// PP2_SUBTYPE_SSL_SIG_ALG, e.g. `SHA256`.
    public var signatureAlgorithm: String? { string(ProxyTLV.TypeCode.sslSignatureAlgorithm) }
    /// PP2_SUBTYPE_SSL_KEY_ALG, e.g. `RSA2048`.
    public var keyAlgorithm: String? { string(ProxyTLV.TypeCode.sslKeyAlgorithm) }

    /// True when the client sent a certificate and it was verified.
    public var hasVerifiedClientCertificate: Bool {
        verify == 0 && !client.isDisjoint(with: [.certificateOnConnection, .certificateInSession])
    }

    private func string(_ type: UInt8) -> String? {
        guard let tlv = subTLVs.first(where: { $0.type == type }) else { return nil }
        return try? utf8String(tlv.value)
    }

    static func isStringSubtype(_ type: UInt8) -> Bool {
        (ProxyTLV.TypeCode.sslVersion...ProxyTLV.TypeCode.sslKeyAlgorithm).contains(type)
    }

    /// Checks a PP2_TYPE_SSL value in place, with the rules and errors of `init(value:)`.
    static func validate(_ bytes: UnsafeRawBufferPointer) throws(ProxyHeaderError.TLVProblem) {
        guard bytes.count >= 5 else { throw .sslTooShort(actual: bytes.count) }
        var offset = 5
        while offset < bytes.count {
            let available = bytes.count - offset
            guard available >= 3 else { throw .badSubTLV(type: bytes[offset], .headerTruncated(available: available)) }
            let type = bytes[offset]
            let length = Int(readBigEndianUInt16(bytes, at: offset + 1))
            guard length <= available - 3 else { throw .badSubTLV(type: type, .overrun(length: length, available: available - 3)) }
            if isStringSubtype(type), !isValidUTF8(bytes[offset + 3..<offset + 3 + length]) {
                throw .badSubTLV(type: type, .invalidUTF8)
            }
            offset += 3 + length
        }
    }

    /// Decodes a PP2_TYPE_SSL value; string sub-TLVs must be valid UTF-8.
    init(value: [UInt8]) throws(ProxyHeaderError.TLVProblem) {
        guard value.count >= 5 else { throw .sslTooShort(actual: value.count) }
        let result: Result<ProxySSLInfo, ProxyHeaderError.TLVProblem> = value.withUnsafeBytes { bytes in
            var subTLVs: [ProxyTLV] = []
            var offset = 5
            while offset < bytes.count {
                let available = bytes.count - offset
                guard available >= 3 else {
                    return .failure(.badSubTLV(type: bytes[offset], .headerTruncated(available: available)))
                }
                let type = bytes[offset]
                let length = Int(readBigEndianUInt16(bytes, at: offset + 1))
                guard length <= available - 3 else {
                    return .failure(.badSubTLV(type: type, .overrun(length: length, available: available - 3)))
                }
                let subValue = Array(bytes[offset + 3..<offset + 3 + length])
                if Self.isStringSubtype(type) {
                    do throws(ProxyHeaderError.TLVProblem) {
                        _ = try utf8String(subValue)
                    } catch {
                        return .failure(.badSubTLV(type: type, .invalidUTF8))
                    }
                }
                subTLVs.append(ProxyTLV(type: type, value: subValue))
                offset += 3 + length
            }
            return .success(
                ProxySSLInfo(
                    client: ClientFlags(rawValue: bytes[0]), verify: readBigEndianUInt32(bytes, at: 1),
                    subTLVs: subTLVs))
        }
        self = try result.get()
    }

    /// The TLV value: client, verify, then the sub-TLVs.
    public var encodedValue: [UInt8] {
        var bytes: [UInt8] = [client.rawValue]
        bytes += bigEndianBytes(verify)
        for tlv in subTLVs {
            bytes.append(tlv.type)
            bytes.append(UInt8(truncatingIfNeeded: tlv.value.count >> 8))
            bytes.append(UInt8(truncatingIfNeeded: tlv.value.count))
            bytes += tlv.value
        }
        return bytes
    }
}

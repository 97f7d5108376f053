import ProxyProtocol
import Testing

@Suite("TLVs (spec 2.2.1 to 2.2.8)")
struct TLVTests {
    @Test("every kind of TLV decodes to its typed view")
    func decodedViews() throws {
        let (header, _) = try #require(try ProxyHeaderParser.parse(v2Header(0x21, 0x11, everyTLVBody)))
        let views = header.tlvs.map(\.decoded)
        let expectedSSL = ProxySSLInfo(
            client: [.ssl, .certificateOnConnection, .certificateInSession], verify: 0, version: "TLSv1.3",
            commonName: "client.example", cipher: "TLS_AES_128_GCM_SHA256", signatureAlgorithm: "SHA256",
            keyAlgorithm: "RSA2048")
        #expect(
            views == [
                .alpn(ascii("h2")), .authority("example.com"), .noop, .uniqueID(uniqueID128), .ssl(expectedSSL),
                .netns("blue"), .custom(type: 0xE0, value: [1, 2]), .custom(type: 0xEF, value: []),
                .experimental(type: 0xF0, value: [3]), .experimental(type: 0xF7, value: [4]),
                .future(type: 0xF8, value: [5]), .future(type: 0xFF, value: [6]), .unassigned(type: 0x06, value: [7]),
            ])
    }

    @Test("the header offers the common TLVs directly")
    func accessors() throws {
        let (header, _) = try #require(try ProxyHeaderParser.parse(v2Header(0x21, 0x11, everyTLVBody)))
        #expect(header.alpn == ascii("h2"))
        #expect(header.authority == "example.com")
        #expect(header.uniqueID == uniqueID128)
        #expect(header.netns == "blue")
        #expect(header.crc32c == nil)
        #expect(header.firstTLV(ofType: 0xF8)?.value == [5])
        let ssl = try #require(header.ssl)
        #expect(ssl.client == [.ssl, .certificateOnConnection, .certificateInSession])
        #expect(ssl.verify == 0)
        #expect(ssl.version == "TLSv1.3")
        #expect(ssl.commonName == "client.example")
        #expect(ssl.cipher == "TLS_AES_128_GCM_SHA256")
        #expect(ssl.signatureAlgorithm == "SHA256")
        #expect(ssl.keyAlgorithm == "RSA2048")
        #expect(ssl.hasVerifiedClientCertificate)
        #expect(ssl.subTLVs.map(\.type) == [0x21, 0x22, 0x23, 0x24, 0x25])
    }

    @Test("a header without TLVs has none of them")
    func noTLVs() throws {
        let (header, _) = try #require(try ProxyHeaderParser.parse(v2Header(0x21, 0x11, tcp4Block)))
        #expect(header.tlvs.isEmpty)
        #expect(header.authority == nil)
        #expect(header.alpn == nil)
        #expect(header.uniqueID == nil)
        #expect(header.ssl == nil)
        #expect(header.netns == nil)
    }

    @Test("SSL: flags and verify are read, unknown sub-TLVs kept raw")
    func sslDetails() throws {
        let value: [UInt8] = [0x01] + be32(0x0000_0013) + tlv(0x21, ascii("TLSv1.2")) + tlv(0x99, [1, 2, 3])
        let (header, _) = try #require(try ProxyHeaderParser.parse(tcp4With(tlv(0x20, value))))
        let ssl = try #require(header.ssl)
        #expect(ssl.client == .ssl)
        #expect(ssl.verify == 19)
        #expect(!ssl.hasVerifiedClientCertificate)
        #expect(ssl.version == "TLSv1.2")
        #expect(ssl.commonName == nil)
        #expect(ssl.subTLVs.last == ProxyTLV(type: 0x99, value: [1, 2, 3]))
        #expect(ssl.encodedValue == value)
    }

    static let decodedAndRaw: [(ProxyTLV.Decoded, ProxyTLV)] = [
        (.alpn(ascii("h2")), ProxyTLV(type: 0x01, value: ascii("h2"))),
        (.authority("é.example"), ProxyTLV(type: 0x02, value: [0xC3, 0xA9] + ascii(".example"))),
        (.crc32c(0x0102_0304), ProxyTLV(type: 0x03, value: [1, 2, 3, 4])),
        (.noop, ProxyTLV(type: 0x04, value: [])),
        (.uniqueID([9, 9]), ProxyTLV(type: 0x05, value: [9, 9])),
        (.ssl(ProxySSLInfo(client: .ssl, verify: 1, version: "TLSv1.3")),
         ProxyTLV(type: 0x20, value: [1, 0, 0, 0, 1, 0x21, 0, 7] + ascii("TLSv1.3"))),
        (.netns("ns"), ProxyTLV(type: 0x30, value: ascii("ns"))),
        (.custom(type: 0xE5, value: [1]), ProxyTLV(type: 0xE5, value: [1])),
    ]

    @Test("decoded values build their raw TLVs", arguments: decodedAndRaw)
    func buildRaw(_ decoded: ProxyTLV.Decoded, _ raw: ProxyTLV) {
        #expect(ProxyTLV(decoded) == raw)
        #expect(raw.decoded == decoded)
    }

    @Test("a hand-made TLV that breaks its type's rules decodes as malformed")
    func malformed() {
        #expect(ProxyTLV(type: 0x03, value: [1, 2]).decoded == .malformed(type: 0x03, value: [1, 2]))
        #expect(ProxyTLV(type: 0x02, value: [0xFF]).decoded == .malformed(type: 0x02, value: [0xFF]))
        #expect(ProxyTLV(type: 0x20, value: [1]).decoded == .malformed(type: 0x20, value: [1]))
    }

    @Test("type codes are the spec's")
    func typeCodes() {
        #expect(ProxyTLV.TypeCode.alpn == 0x01)
        #expect(ProxyTLV.TypeCode.authority == 0x02)
        #expect(ProxyTLV.TypeCode.crc32c == 0x03)
        #expect(ProxyTLV.TypeCode.noop == 0x04)
        #expect(ProxyTLV.TypeCode.uniqueID == 0x05)
        #expect(ProxyTLV.TypeCode.ssl == 0x20)
        #expect(ProxyTLV.TypeCode.sslVersion == 0x21)
        #expect(ProxyTLV.TypeCode.sslCommonName == 0x22)
        #expect(ProxyTLV.TypeCode.sslCipher == 0x23)
        #expect(ProxyTLV.TypeCode.sslSignatureAlgorithm == 0x24)
        #expect(ProxyTLV.TypeCode.sslKeyAlgorithm == 0x25)
        #expect(ProxyTLV.TypeCode.netns == 0x30)
        #expect(ProxyTLV.TypeCode.custom == 0xE0...0xEF)
        #expect(ProxyTLV.TypeCode.experimental == 0xF0...0xF7)
        #expect(ProxyTLV.TypeCode.future == 0xF8...0xFF)
    }
}

@Suite("CRC32C (Castagnoli)")
struct CRC32CTests {
    static let knownVectors: [([UInt8], UInt32)] = [
        (ascii("123456789"), 0xE306_9283),
        ([UInt8](repeating: 0, count: 32), 0x8A91_36AA),
        ([UInt8](repeating: 0xFF, count: 32), 0x62A8_AB43),
        ((0..<32).map { UInt8($0) }, 0x46DD_794E),
        ((0..<32).map { UInt8(31 - $0) }, 0x113F_DB5C),
        ([], 0),
    ]

    @Test("known vectors (RFC 3720 B.4 and the usual check value)", arguments: knownVectors)
    func vectors(_ bytes: [UInt8], _ expected: UInt32) {
        #expect(CRC32C.checksum(bytes) == expected)
    }

    @Test("updating in pieces equals one pass")
    func incremental() {
        var crc = CRC32C()
        crc.update(ascii("1234"))
        ascii("56789").withUnsafeBytes { crc.update($0) }
        #expect(crc.value == 0xE306_9283)
    }
}

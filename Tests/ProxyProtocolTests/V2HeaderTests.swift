import ProxyProtocol
import Testing

@Suite("PROXY v2, the binary header (spec 2.2)")
struct V2HeaderTests {
    @Test("parses every valid form", arguments: v2ValidSamples)
    func parsesValidForm(_ sample: ValidSample) throws {
        let parsed = try #require(try ProxyHeaderParser.parse(sample.bytes))
        #expect(parsed.header == sample.expected)
        #expect(parsed.consumed == sample.bytes.count)
    }

    @Test("rejects what breaks the format, with the reason", arguments: v2InvalidSamples)
    func rejects(_ sample: InvalidSample) {
        #expect(error(for: sample.bytes)?.reason == sample.reason)
    }

    @Test("rejects as soon as the bytes received rule out a valid header", arguments: v2InvalidSamples)
    func rejectsEarly(_ sample: InvalidSample) {
        #expect(deliver(sample.accepted) == .needMoreData)
        #expect(deliver(sample.bytes, .byteByByte) == .failed(sample.reason, received: sample.rejectedAt))
    }

    @Test("TCP over IPv4 reads as the spec's struct says")
    func tcp4() throws {
        let (header, consumed) = try #require(try ProxyHeaderParser.parse(v2Header(0x21, 0x11, tcp4Block)))
        #expect(consumed == 28)
        #expect(header.version == .v2)
        #expect(header.command == .proxy)
        #expect(header.family == .inet)
        #expect(header.transport == .stream)
        #expect(header.sourceAddress == "192.0.2.1")
        #expect(header.sourcePort == 56324)
        #expect(header.destinationAddress == "198.51.100.7")
        #expect(header.destinationPort == 443)
        #expect(!header.usesRealConnectionAddresses)
    }

    @Test("TCP over IPv6")
    func tcp6() throws {
        let (header, consumed) = try #require(try ProxyHeaderParser.parse(v2Header(0x21, 0x21, tcp6Block)))
        #expect(consumed == 16 + 36)
        #expect(header.sourceAddress == "2001:db8::1")
        #expect(header.destinationAddress == "2001:db8::2")
        #expect(header.sourcePort == 1234)
        #expect(header.destinationPort == 443)
    }

    @Test("UNIX paths come out as text, an abstract name with @")
    func unixText() throws {
        let (header, _) = try #require(try ProxyHeaderParser.parse(v2Header(0x21, 0x31, unixBlock)))
        #expect(header.sourceAddress == "/var/run/client.sock")
        #expect(header.destinationAddress == "@abstract")
        #expect(header.sourcePort == nil)
        #expect(header.usesRealConnectionAddresses)
    }

    static let realAddressCases: [([UInt8], Bool)] = [
            (v2Header(0x20, 0x00), true), (v2Header(0x20, 0x11, tcp4Block), true), (v2Header(0x21, 0x00), true),
            (v2Header(0x21, 0x10, tcp4Block), true), (v2Header(0x21, 0x31, unixBlock), true),
            (v2Header(0x21, 0x11, tcp4Block), false), (v2Header(0x21, 0x22, tcp6Block), false),
    ]

    @Test("the receiver keeps the real connection's addresses for LOCAL, UNSPEC and UNIX", arguments: realAddressCases)
    func usesRealConnectionAddresses(_ bytes: [UInt8], _ expected: Bool) throws {
        let (header, _) = try #require(try ProxyHeaderParser.parse(bytes))
        #expect(header.usesRealConnectionAddresses == expected)
    }

    @Test("the declared length is honoured: the header ends there, whatever follows")
    func declaredLengthIsHonoured() throws {
        // The length says 12: the TLV-looking bytes after it are application data.
        let bytes = v2Header(0x21, 0x11, length: 12, tcp4Block + tlv(0x01, ascii("h2")))
        let (header, consumed) = try #require(try ProxyHeaderParser.parse(bytes))
        #expect(consumed == 28)
        #expect(header.tlvs.isEmpty)
    }

    @Test("a CRC32C over the header with the field zeroed is verified")
    func checksumIsVerified() throws {
        let (header, _) = try #require(try ProxyHeaderParser.parse(checksummed))
        #expect(header.crc32c == CRC32C.checksum(checksummed.dropLast(4) + [0, 0, 0, 0]))
        // A flipped bit in the addresses or in a TLV value is caught.
        #expect(checksummed.count == 16 + 12 + (3 + 11) + (3 + 4))
        for index in Array(16..<28) + Array(31..<42) {
            var spoiled = checksummed
            spoiled[index] ^= 0x01
            #expect(error(for: spoiled)?.reason == .crcMismatch, "bit flipped at byte \(index)")
        }
    }

    @Test("the mismatch description gives both values")
    func checksumMismatchDescription() {
        let bytes = v2HeaderWithChecksum(0x21, 0x11, tcp4Block, xor: 0xFF)
        let good = CRC32C.checksum(bytes.dropLast(4) + [0, 0, 0, 0])
        let error = error(for: bytes)
        #expect(error?.reason == .crcMismatch)
        let said = String(good ^ 0xFF, radix: 16, uppercase: true)
        #expect(error?.description.contains(said) == true)
    }

    @Test("a UNIQUE_ID may hold 128 bytes, not 129")
    func uniqueIDLimit() throws {
        let (header, _) = try #require(try ProxyHeaderParser.parse(tcp4With(tlv(0x05, uniqueID128))))
        #expect(header.uniqueID == uniqueID128)
        #expect(error(for: tcp4With(tlv(0x05, uniqueID128 + [1])))?.reason == .badTLV)
    }

    @Test("the header limit is the caller's to set")
    func maximumHeaderLength() throws {
        let noop = tlv(0x04, [UInt8](repeating: 0, count: 100))
        let bytes = v2Header(0x21, 0x11, tcp4Block + noop)  // 16 + 12 + 103 = 131 bytes
        #expect(try ProxyHeaderParser.parse(bytes, maximumHeaderLength: 131)?.consumed == 131)
        let error = error(for: bytes, maximumHeaderLength: 130)
        #expect(error?.reason == .tooLong)
        #expect(error?.description == "PROXY v2: header of 131 bytes exceeds the limit of 130 bytes")
        // The protocol maximum, 16 + 65535, is accepted when allowed.
        let biggest = v2Header(0x21, 0x00, tlv(0x04, [UInt8](repeating: 0, count: 65532)))
        #expect(biggest.count == 65551)
        #expect(
            try ProxyHeaderParser.parse(biggest, maximumHeaderLength: ProxyHeaderParser.v2ProtocolMaximumLength)?.consumed
                == 65551)
    }

    @Test("errors say what and where")
    func descriptions() {
        #expect(
            error(for: v2Signature + [0x31])?.description
                == "PROXY v2: version 3 in byte 12 (0x31), only version 2 is defined")
        #expect(
            error(for: v2Signature + [0x23])?.description
                == "PROXY v2: command 3 in byte 12 (0x23) is neither LOCAL (0) nor PROXY (1)")
        #expect(
            error(for: v2Signature + [0x21, 0x41])?.description
                == "PROXY v2: family/transport byte 0x41 is undefined (family 0-3, transport 0-2)")
        #expect(
            error(for: v2Header(0x21, 0x11, length: 8))?.description
                == "PROXY v2: family 0x11 needs a 12-byte address block but the header declares 8 bytes")
        #expect(
            error(for: tcp4With(tlv(0x03, [0, 0, 0])))?.description
                == "PROXY v2: TLV 0x03 (CRC32C) at byte 28: value is 3 bytes, expected 4")
        #expect(
            error(for: tcp4With(tlv(0x20, [1, 0, 0, 0, 0] + tlv(0x22, [0xFE]))))?.description
                == "PROXY v2: TLV 0x20 (SSL) at byte 28: sub-TLV 0x22 (SSL_CN): value is not valid UTF-8")
    }
}

import ProxyProtocol
import Testing

@Suite("PROXY v1, the human-readable header (spec 2.1)")
struct V1HeaderTests {
    @Test("parses every valid form", arguments: v1ValidSamples)
    func parsesValidForm(_ sample: ValidSample) throws {
        let parsed = try #require(try ProxyHeaderParser.parse(sample.bytes))
        #expect(parsed.header == sample.expected)
        #expect(parsed.consumed == sample.bytes.count)
    }

    @Test("rejects what breaks the grammar, with the reason", arguments: v1InvalidSamples)
    func rejects(_ sample: InvalidSample) {
        #expect(error(for: sample.bytes)?.reason == sample.reason)
    }

    @Test("rejects at the first byte that rules out a valid line", arguments: v1InvalidSamples)
    func rejectsEarly(_ sample: InvalidSample) {
        #expect(deliver(sample.accepted) == .needMoreData)
        #expect(deliver(sample.bytes, .byteByByte) == .failed(sample.reason, received: sample.rejectedAt))
    }

    @Test("the spec's example reads as written")
    func specExample() throws {
        let line = ascii("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\n")
        let (header, consumed) = try #require(try ProxyHeaderParser.parse(line))
        #expect(consumed == 47)
        #expect(header.version == .v1)
        #expect(header.command == .proxy)
        #expect(header.family == .inet)
        #expect(header.transport == .stream)
        #expect(header.sourceAddress == "192.168.0.1")
        #expect(header.sourcePort == 56324)
        #expect(header.destinationAddress == "192.168.0.11")
        #expect(header.destinationPort == 443)
        #expect(!header.usesRealConnectionAddresses)
        #expect(header.tlvs.isEmpty)
    }

    @Test("TCP6 addresses come out in RFC 5952 form")
    func tcp6Text() throws {
        let (header, _) = try #require(
            try ProxyHeaderParser.parse(ascii("PROXY TCP6 2001:DB8:0:0:0:0:0:1 0:0:0:0:0:FFFF:C000:0201 1 2\r\n")))
        #expect(header.family == .inet6)
        #expect(header.sourceAddress == "2001:db8::1")
        #expect(header.destinationAddress == "::ffff:192.0.2.1")
    }

    @Test("UNKNOWN tells the receiver to use the real connection")
    func unknownUsesRealAddresses() throws {
        for line in ["PROXY UNKNOWN\r\n", "PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n"] {
            let (header, _) = try #require(try ProxyHeaderParser.parse(ascii(line)))
            #expect(header.usesRealConnectionAddresses)
            #expect(header.family == .unspecified)
            #expect(header.sourceAddress == nil)
            #expect(header.sourcePort == nil)
        }
    }

    @Test("an HTTP request fails at its first byte")
    func httpFailsAtFirstByte() {
        var parser = ProxyHeaderParser()
        let error = #expect(throws: ProxyHeaderError.self) { try parser.parse(ascii("G")) }
        #expect(error?.reason == .badSignature)
        #expect(error?.offset == 0)
    }

    @Test("a leading zero fails before the line ends")
    func leadingZeroFailsBeforeCRLF() {
        var parser = ProxyHeaderParser()
        let error = #expect(throws: ProxyHeaderError.self) { try parser.parse(ascii("PROXY TCP4 01.2.3.4")) }
        #expect(error?.reason == .badAddress)
        #expect(error?.offset == 12)
        #expect(error?.description == "PROXY v1: source address is not a canonical IPv4 dotted quad (byte 12)")
    }

    @Test("107 bytes without CRLF fail as too long at the 107th byte")
    func tooLongAt107() throws {
        var parser = ProxyHeaderParser()
        let line = ascii("PROXY UNKNOWN " + String(repeating: "y", count: 200))
        #expect(try parser.parse(line.prefix(106)) == .needMoreData)
        let error = #expect(throws: ProxyHeaderError.self) { try parser.parse(line.prefix(107)) }
        #expect(error?.reason == .tooLong)
        #expect(error?.description == "PROXY v1: no CRLF within the first 107 bytes")
    }
}

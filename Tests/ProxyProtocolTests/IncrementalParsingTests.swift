import ProxyProtocol
import Testing

let allValidSamples = v1ValidSamples + v2ValidSamples
let allInvalidSamples = v1InvalidSamples + v2InvalidSamples

@Suite("Incremental parsing: however the bytes arrive, the answer is the same")
struct IncrementalParsingTests {
    @Test("a valid header parses the same whole, byte by byte and in random chunks",
          arguments: allValidSamples, Delivery.all)
    func validInAnyChunking(_ sample: ValidSample, _ delivery: Delivery) {
        #expect(deliver(sample.bytes, delivery) == .complete(sample.expected, consumed: sample.bytes.count))
    }

    @Test("an invalid header fails the same way in any chunking, as soon as the bad byte arrives",
          arguments: allInvalidSamples, Delivery.all)
    func invalidInAnyChunking(_ sample: InvalidSample, _ delivery: Delivery) {
        // The first call that includes the bad byte throws.
        let firstCallSeeingIt = delivery.cutPoints(sample.bytes.count).first { $0 >= sample.rejectedAt }!
        #expect(deliver(sample.bytes, delivery) == .failed(sample.reason, received: firstCallSeeingIt))
    }

    @Test("every proper prefix of a valid header needs more data, never fails", arguments: allValidSamples)
    func prefixesNeedMoreData(_ sample: ValidSample) throws {
        for length in 0..<sample.bytes.count {
            #expect(try ProxyHeaderParser.parse(Array(sample.bytes.prefix(length))) == nil, "prefix of \(length) bytes")
        }
    }

    @Test("application data after the header is neither consumed nor touched",
          arguments: allValidSamples, [Delivery.whole, .byteByByte, .randomChunks(seed: 42)])
    func trailingData(_ sample: ValidSample, _ delivery: Delivery) {
        for data in [ascii("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), v2Signature + [0x21, 0x11], ascii("\r\n"), [0]] {
            let bytes = sample.bytes + data
            #expect(deliver(bytes, delivery) == .complete(sample.expected, consumed: sample.bytes.count))
            #expect(Array(bytes[sample.bytes.count...]) == data)
        }
    }

    @Test("after completing, the parser repeats its answer and has examined exactly the header")
    func repeatsCompletion() throws {
        var parser = ProxyHeaderParser()
        let bytes = ascii("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nHELLO")
        let first = try parser.parse(bytes)
        #expect(parser.examinedByteCount == 32)
        #expect(try parser.parse(bytes) == first)
        guard case .complete(_, 32) = first else {
            Issue.record("expected completion at 32 bytes, got \(first)")
            return
        }
    }

    @Test("after failing, the parser throws the same error again")
    func repeatsFailure() {
        var parser = ProxyHeaderParser()
        let first = #expect(throws: ProxyHeaderError.self) { try parser.parse(ascii("PROXY TCP4 1.2.3.4  ")) }
        let second = #expect(throws: ProxyHeaderError.self) { try parser.parse(ascii("PROXY TCP4 1.2.3.4  5")) }
        #expect(first != nil)
        #expect(first == second)
    }

    @Test("v1: bytes already examined are never examined again")
    func v1NeverRescans() throws {
        // Hand the parser a valid prefix, then a buffer whose examined part is
        // garbage: a parser that rescanned would notice.
        var parser = ProxyHeaderParser()
        let line = ascii("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n")
        #expect(try parser.parse(line.prefix(20)) == .needMoreData)
        #expect(parser.examinedByteCount == 20)
        let tampered = [UInt8](repeating: UInt8(ascii: "#"), count: 20) + line.dropFirst(20)
        #expect(try parser.parse(tampered) == .complete(v1(inet("1.2.3.4", 1, "5.6.7.8", 2)), consumed: line.count))
    }

    @Test("v2: the 16-byte prefix is examined once, even for the checksum")
    func v2NeverRescans() throws {
        var parser = ProxyHeaderParser()
        #expect(try parser.parse(checksummed.prefix(16)) == .needMoreData)
        #expect(try parser.parse(checksummed.prefix(30)) == .needMoreData)
        #expect(parser.examinedByteCount == 16)
        let tampered = [UInt8](repeating: 0xEE, count: 16) + checksummed.dropFirst(16)
        let expected = try #require(try ProxyHeaderParser.parse(checksummed))
        #expect(try parser.parse(tampered) == .complete(expected.header, consumed: expected.consumed))
    }

    @Test("nothing received is nothing to judge")
    func emptyInput() throws {
        var parser = ProxyHeaderParser()
        #expect(try parser.parse([UInt8]()) == .needMoreData)
        #expect(try ProxyHeaderParser.parse([]) == nil)
    }

    @Test("the caller's bound on buffering covers both versions")
    func bufferBound() {
        #expect(ProxyHeaderParser().maximumBufferedBytes == 4096)
        #expect(ProxyHeaderParser(maximumHeaderLength: 64).maximumBufferedBytes == 107)
        #expect(ProxyHeaderParser(maximumHeaderLength: 1 << 20).maximumHeaderLength == 65551)
    }

    @Test("a connection that ends early is reported as truncated")
    func truncated() {
        let error = ProxyHeaderError.truncated(received: 10)
        #expect(error.reason == .truncated)
        #expect(error.description == "input ended after 10 bytes, before the PROXY header was complete")
    }

    @Test("non-contiguous collections parse too")
    func nonContiguous() throws {
        var parser = ProxyHeaderParser()
        let bytes = ascii("PROXY UNKNOWN\r\n")
        let result = try parser.parse(bytes.lazy.map { $0 })
        #expect(result == .complete(v1(.unspecified), consumed: 15))
    }
}

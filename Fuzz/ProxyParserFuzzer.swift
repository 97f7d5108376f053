// libFuzzer entry point for the PROXY protocol parser (issue 5).
//
// The input is the raw byte stream a connection would deliver: no control
// prefix, so every corpus file and every crash file is a literal header that
// can be pasted into a regression test as it is.
//
// Not only "no crash": each input is checked against the parser's contract,
// and any violation traps (fatalError) so libFuzzer saves the input.
//
//  (a) Delivery does not matter. Whole, byte by byte, and in chunks whose sizes
//      are read from the input's own first bytes, the parser gives the same
//      header and `consumed`, or the same error, thrown by the first call that
//      includes the byte at which byte-by-byte delivery threw.
//  (b) `consumed` never exceeds the bytes given, and the header completes on
//      exactly its last byte. A complete header is always encodable: encoded
//      by ProxyHeaderEncoder (with and without an added CRC32C) and parsed
//      again it gives an equal header, and the encoding is a fixed point.
//  (c) Every proper prefix of a complete header, and of the bytes before the
//      one that made the parser fail, answers needMoreData, never an error.
//  And: bytes already examined are never read again (they are spoiled after
//  each call and the answer stays the same); bytes after the header change nothing; the length limit is exact;
//  `examinedByteCount` never passes the bytes given; an error's offset names
//  the byte that ruled the input out (for v1 and the v2 prefix, the last byte
//  received); TLVs, SSL info and addresses survive their typed views.

import ProxyProtocol

@_cdecl("LLVMFuzzerTestOneInput")
public func proxyParserFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: size == 0 ? nil : data, count: size)
    FuzzCheck(input: input).run()
    return 0
}

/// What one delivery of the input made the parser say.
enum Outcome: Equatable, CustomStringConvertible {
    case complete(ProxyHeader, consumed: Int)
    case needMoreData
    /// `received`: how many bytes the call that threw had been given.
    case failed(ProxyHeaderError, received: Int)

    var description: String {
        switch self {
        case .complete(let header, let consumed): "complete(\(header), consumed: \(consumed))"
        case .needMoreData: "needMoreData"
        case .failed(let error, let received): "failed(\(error.reason): \(error), received: \(received))"
        }
    }
}

struct FuzzCheck {
    let input: UnsafeRawBufferPointer
    let limit = ProxyHeaderParser.defaultMaximumHeaderLength

    func run() {
        let whole = deliver(cuts: [input.count])
        let byteByByte = deliver(cuts: 0...input.count)
        let chunked = deliver(cuts: derivedCuts())

        checkSameOutcome(whole, byteByByte: byteByByte, cuts: [input.count], "whole")
        checkSameOutcome(chunked, byteByByte: byteByByte, cuts: derivedCuts(), "chunked")
        let tampered = deliverSpoilingExaminedBytes()
        check(tampered == byteByByte, "with examined bytes spoiled: \(tampered), byte by byte: \(byteByByte)")

        // The generic (Collection) entry points agree with the raw-buffer one,
        // contiguous or not.
        let bytes = Array(input)
        let viaArray: Outcome
        do {
            viaArray = try ProxyHeaderParser.parse(bytes).map { .complete($0.header, consumed: $0.consumed) } ?? .needMoreData
        } catch {
            viaArray = .failed(error, received: bytes.count)
        }
        check(viaArray == whole, "static parse([UInt8]) gave \(viaArray), parse(buffer:) gave \(whole)")
        var lazyParser = ProxyHeaderParser()
        let viaLazy: Outcome
        do {
            switch try lazyParser.parse(bytes.lazy.map { $0 }) {
            case .needMoreData: viaLazy = .needMoreData
            case .complete(let header, let consumed): viaLazy = .complete(header, consumed: consumed)
            }
        } catch {
            viaLazy = .failed(error, received: bytes.count)
        }
        check(viaLazy == whole, "parse(non-contiguous) gave \(viaLazy), parse(buffer:) gave \(whole)")

        switch byteByByte {
        case .needMoreData:
            break
        case .complete(let header, let consumed):
            checkComplete(header, consumed: consumed)
        case .failed(let error, let received):
            checkFailure(error, received: received)
        }
    }

    // MARK: - Delivering

    /// Chunk sizes read from the input itself: chunk k is 1 + (byte k mod 16) % 64
    /// bytes long, so the fuzzer steers the chunking by mutating the first bytes.
    func derivedCuts() -> [Int] {
        guard !input.isEmpty else { return [0] }
        var cuts: [Int] = []
        var received = 0
        var index = 0
        while received < input.count {
            received = min(input.count, received + 1 + Int(input[index % min(16, input.count)]) % 64)
            cuts.append(received)
            index += 1
        }
        return cuts
    }

    /// Hands the parser growing prefixes of the input, as a connection would,
    /// checking at every call what must hold whatever the answer.
    func deliver(cuts: some Sequence<Int>, limit: Int? = nil) -> Outcome {
        var parser = ProxyHeaderParser(maximumHeaderLength: limit ?? self.limit)
        var examined = 0
        for received in cuts {
            let buffer = UnsafeRawBufferPointer(rebasing: input[0..<received])
            let result: ProxyHeaderParser.ParseResult
            do {
                result = try parser.parse(buffer: buffer)
            } catch {
                check(parser.examinedByteCount == 0, "examinedByteCount \(parser.examinedByteCount) after a failure")
                // A failed parser repeats its error, whatever it is given next.
                do {
                    _ = try parser.parse(buffer: input)
                    check(false, "a parser that threw \(error) answered again")
                } catch let again {
                    check(again == error, "a failed parser threw \(error), then \(again)")
                }
                return .failed(error, received: received)
            }
            check(parser.examinedByteCount <= received, "examined \(parser.examinedByteCount) of \(received) bytes")
            check(parser.examinedByteCount >= examined, "examinedByteCount went back from \(examined)")
            examined = parser.examinedByteCount
            switch result {
            case .needMoreData:
                continue
            case .complete(let header, let consumed):
                check(consumed > 0 && consumed <= received, "consumed \(consumed) of \(received) bytes")
                check(examined == consumed, "complete after examining \(examined), consumed \(consumed)")
                // A complete parser repeats its answer, whatever it is given next.
                let again = try? parser.parse(buffer: input)
                check(again == result, "a complete parser answered \(String(describing: again)) after \(result)")
                return .complete(header, consumed: consumed)
            }
        }
        return .needMoreData
    }

    /// Never rescan: byte by byte, but after each call every byte the parser
    /// says it has examined is inverted. A parser that looked at one again
    /// (or that examined less than it claims) would answer differently.
    func deliverSpoilingExaminedBytes() -> Outcome {
        var bytes = Array(input)
        var parser = ProxyHeaderParser(maximumHeaderLength: limit)
        var spoiled = 0
        for received in 0...bytes.count {
            let attempt = bytes.withUnsafeBytes { buffer in
                Result { () throws(ProxyHeaderError) in
                    try parser.parse(buffer: UnsafeRawBufferPointer(rebasing: buffer[0..<received]))
                }
            }
            let result: ProxyHeaderParser.ParseResult
            switch attempt {
            case .success(let answer): result = answer
            case .failure(let error): return .failed(error, received: received)
            }
            switch result {
            case .needMoreData:
                while spoiled < parser.examinedByteCount {
                    bytes[spoiled] = ~bytes[spoiled]
                    spoiled += 1
                }
            case .complete(let header, let consumed):
                return .complete(header, consumed: consumed)
            }
        }
        return .needMoreData
    }

    /// (a) `outcome` came from delivering the input cut at `cuts`; it must be
    /// the byte-by-byte outcome, and an error must come from the first call
    /// that saw the byte byte-by-byte delivery failed at.
    func checkSameOutcome(_ outcome: Outcome, byteByByte: Outcome, cuts: [Int], _ name: String) {
        switch (outcome, byteByByte) {
        case (.failed(let error, let received), .failed(let expected, let failedAt)):
            check(error == expected, "\(name) threw \(error), byte by byte threw \(expected)")
            let firstCallSeeingIt = cuts.first { $0 >= failedAt }
            check(received == firstCallSeeingIt, "\(name) threw after \(received) bytes, expected \(String(describing: firstCallSeeingIt))")
        default:
            check(outcome == byteByByte, "\(name) gave \(outcome), byte by byte gave \(byteByByte)")
        }
    }

    // MARK: - A complete header

    func checkComplete(_ header: ProxyHeader, consumed: Int) {
        check(consumed <= input.count, "consumed \(consumed) of \(input.count) bytes")
        let headerBytes = UnsafeRawBufferPointer(rebasing: input[0..<consumed])

        // (c) Every proper prefix, to a fresh parser, needs more data.
        for length in 0..<consumed {
            var parser = ProxyHeaderParser()
            do {
                let result = try parser.parse(buffer: UnsafeRawBufferPointer(rebasing: input[0..<length]))
                check(result == .needMoreData, "prefix of \(length) bytes of a \(consumed)-byte header gave \(result)")
            } catch {
                check(false, "prefix of \(length) bytes of a \(consumed)-byte header threw \(error)")
            }
        }

        // Bytes after the header change nothing.
        var alone = ProxyHeaderParser()
        let exact = try? alone.parse(buffer: headerBytes)
        check(exact == .complete(header, consumed: consumed), "the header alone gave \(String(describing: exact))")

        // The length limit is exact: a v2 header of `consumed` bytes passes a
        // limit of `consumed` and fails one byte less with tooLong; v1 ignores it.
        switch header.version {
        case .v1:
            check(consumed <= ProxyHeaderParser.v1MaximumLength, "a v1 line of \(consumed) bytes")
            let small = deliver(cuts: [input.count], limit: 16)
            check(small == .complete(header, consumed: consumed), "v1 with a 16-byte v2 limit gave \(small)")
        case .v2:
            check(consumed >= 16, "a v2 header of \(consumed) bytes")
            let atLimit = deliver(cuts: [input.count], limit: consumed)
            check(atLimit == .complete(header, consumed: consumed), "v2 with limit \(consumed) gave \(atLimit)")
            if consumed > 16 {
                let below = deliver(cuts: [input.count], limit: consumed - 1)
                guard case .failed(let error, _) = below, error.reason == .tooLong else {
                    check(false, "v2 of \(consumed) bytes with limit \(consumed - 1) gave \(below)")
                    return
                }
            }
        }

        checkHeaderViews(header)
        checkReencoding(header, consumed: consumed)
    }

    /// (b) A parsed header is always encodable and comes back equal.
    func checkReencoding(_ header: ProxyHeader, consumed: Int) {
        let encoded: [UInt8]
        do {
            encoded = try ProxyHeaderEncoder.encode(header)
        } catch {
            check(false, "a parsed header cannot be encoded: \(error); header \(header)")
            return
        }
        let reparsed = reparse(encoded)
        check(reparsed == .complete(header, consumed: encoded.count), "re-encoded as \(hex(encoded)), parsed as \(reparsed)")
        if header.version == .v2 {
            // The encoder writes nothing the parser had to skip, so never more.
            check(encoded.count <= consumed, "re-encoded v2 header grew from \(consumed) to \(encoded.count) bytes")
        }
        // Canonical form: encoding the re-parsed header gives the same bytes.
        if case .complete(let again, _) = reparsed {
            let twice = try? ProxyHeaderEncoder.encode(again)
            check(twice == encoded, "encoding is not a fixed point: \(hex(encoded)) then \(twice.map(hex) ?? "error")")
        }

        guard header.version == .v2 else {
            check((try? ProxyHeaderEncoder.encode(header, addingChecksum: true)) == nil, "a v1 header took a checksum")
            return
        }
        let withChecksum: [UInt8]
        do {
            withChecksum = try ProxyHeaderEncoder.encode(header, addingChecksum: true)
        } catch {
            check(false, "a parsed v2 header cannot take a checksum: \(error)")
            return
        }
        guard case .complete(var checked, let checkedLength) = reparse(withChecksum) else {
            check(false, "with a checksum, \(hex(withChecksum)) parsed as \(reparse(withChecksum))")
            return
        }
        check(checkedLength == withChecksum.count, "with a checksum, consumed \(checkedLength) of \(withChecksum.count)")
        let crc = ProxyTLV.TypeCode.crc32c
        check(checked.crc32c != nil, "with a checksum, no CRC32C value")
        check(checked.tlvs.count { $0.type == crc } == 1, "with a checksum, \(checked.tlvs.count { $0.type == crc }) CRC32C TLVs")
        checked.tlvs.removeAll { $0.type == crc }
        var original = header
        original.tlvs.removeAll { $0.type == crc }
        check(checked == original, "with a checksum, parsed as \(checked), expected \(original) plus a CRC32C")
    }

    func reparse(_ bytes: [UInt8]) -> Outcome {
        var parser = ProxyHeaderParser(maximumHeaderLength: ProxyHeaderParser.v2ProtocolMaximumLength)
        do {
            switch try parser.parse(bytes) {
            case .needMoreData: return .needMoreData
            case .complete(let header, let consumed): return .complete(header, consumed: consumed)
            }
        } catch {
            return .failed(error, received: bytes.count)
        }
    }

    /// TLVs, SSL info, addresses and the convenience accessors agree with the raw fields.
    func checkHeaderViews(_ header: ProxyHeader) {
        if header.version == .v1 {
            check(header.command == .proxy && header.tlvs.isEmpty, "v1 header \(header)")
        }
        for tlv in header.tlvs {
            let decoded = tlv.decoded
            if case .malformed = decoded { check(false, "the parser accepted a malformed TLV \(tlv)") }
            // NOOP padding is the one view that drops the value.
            let rebuilt = ProxyTLV(decoded)
            let same = decoded == .noop ? rebuilt.type == tlv.type && rebuilt.value.isEmpty : rebuilt == tlv
            check(same, "TLV \(tlv) decoded as \(decoded) does not encode back")
            if case .ssl(let info) = decoded {
                check(info.encodedValue == tlv.value, "SSL value \(hex(tlv.value)) re-encoded as \(hex(info.encodedValue))")
                _ = (info.version, info.commonName, info.cipher, info.signatureAlgorithm, info.keyAlgorithm)
                _ = info.hasVerifiedClientCertificate
            }
        }
        _ = (header.authority, header.alpn, header.uniqueID, header.ssl, header.netns, header.crc32c)
        _ = header.usesRealConnectionAddresses

        switch header.addresses {
        case .unspecified:
            check(header.sourceAddress == nil && header.sourcePort == nil, "unspecified addresses with a source")
        case .inet(let source, let destination):
            for endpoint in [source, destination] {
                check(IPv4Address(endpoint.address.description) == endpoint.address, "IPv4 \(endpoint.address) text")
                let b = endpoint.address.bytes
                check(IPv4Address(b[0], b[1], b[2], b[3]) == endpoint.address, "IPv4 \(endpoint.address) bytes")
            }
            check(header.sourcePort == source.port && header.destinationPort == destination.port, "ports")
        case .inet6(let source, let destination):
            for endpoint in [source, destination] {
                let address = endpoint.address
                check(IPv6Address(address.description) == address, "IPv6 \(address) text")
                check(IPv6Address(bytes: address.bytes) == address, "IPv6 \(address) bytes")
                if let v4 = address.ipv4Mapped { check(IPv6Address(ipv4Mapped: v4) == address, "IPv4-mapped \(address)") }
            }
            check(header.sourcePort == source.port && header.destinationPort == destination.port, "ports")
        case .unix(let source, let destination):
            for path in [source, destination] {
                check(path.count <= 108, "a UNIX path of \(path.count) bytes")
                if path.first == 0 {
                    check(path.last != 0 || path.count == 1, "an abstract UNIX path keeps trailing NULs")
                } else {
                    check(!path.contains(0), "a UNIX path \(hex(path)) holds a NUL")
                }
            }
            check(header.sourceAddress != nil && header.sourcePort == nil, "UNIX address accessors")
        }
    }

    // MARK: - A failure

    func checkFailure(_ error: ProxyHeaderError, received: Int) {
        check(received >= 1 && received <= input.count, "threw after \(received) of \(input.count) bytes")
        check(error.reason != .truncated && error.reason != .unencodable, "the parser threw \(error.reason)")
        check(!error.description.isEmpty, "an error without a description")

        // (c) The bytes before the one that failed are a valid beginning.
        var parser = ProxyHeaderParser()
        let before = Result { () throws(ProxyHeaderError) in
            try parser.parse(buffer: UnsafeRawBufferPointer(rebasing: input[0..<received - 1]))
        }
        check((try? before.get()) == .needMoreData, "the \(received - 1) bytes before the failing one gave \(before)")

        // The error names a byte that was received, and for v1 and the v2
        // prefix that byte is the last one received: the parser failed at once.
        if let offset = error.offset {
            check(offset < received, "error offset \(offset) after \(received) bytes: \(error)")
            let isV1 = input[0] == UInt8(ascii: "P")
            if isV1 || offset < 16 {
                check(offset == received - 1, "error at byte \(offset) noticed only after \(received) bytes: \(error)")
            }
        }
        if input[0] != UInt8(ascii: "P") && received > 16 {
            // A v2 body is judged only once complete.
            let declared = 16 + (Int(input[14]) << 8 | Int(input[15]))
            check(received == declared, "a v2 body error after \(received) bytes of a \(declared)-byte header")
        }
    }

    // MARK: - Reporting

    func check(_ condition: Bool, _ message: @autoclosure () -> String, line: UInt = #line) {
        guard !condition else { return }
        let shown = input.count <= 512 ? hex(Array(input)) : hex(Array(input.prefix(512))) + "..."
        fatalError("PROXY parser property violated: \(message())\ninput (\(input.count) bytes): \(shown)", line: line)
    }
}

func hex(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef")
    var text = ""
    text.reserveCapacity(bytes.count * 2)
    for byte in bytes {
        text.append(digits[Int(byte >> 4)])
        text.append(digits[Int(byte & 0xF)])
    }
    return text
}

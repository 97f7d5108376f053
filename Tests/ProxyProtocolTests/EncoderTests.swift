import ProxyProtocol
import Testing

@Suite("Encoding headers")
struct EncoderTests {
    static let v1Samples: [(ProxyHeader, String)] = [
        (v1(inet("192.168.0.1", 56324, "192.168.0.11", 443)), "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"),
        (v1(inet6("2001:db8::1", 0, "::ffff:1.2.3.4", 65535)), "PROXY TCP6 2001:db8::1 ::ffff:1.2.3.4 0 65535\r\n"),
        (v1(.unspecified), "PROXY UNKNOWN\r\n"),
    ]

    @Test("v1 lines", arguments: v1Samples)
    func v1Lines(_ header: ProxyHeader, _ line: String) throws {
        #expect(try ProxyHeaderEncoder.encode(header) == ascii(line))
    }

    @Test("v2 headers match the hand-built bytes", arguments: v2ValidSamples.filter {
        // LOCAL headers whose body was skipped cannot be rebuilt byte for byte.
        $0.expected.command == .proxy && !$0.name.contains("NUL")
    })
    func v2Bytes(_ sample: ValidSample) throws {
        #expect(try ProxyHeaderEncoder.encode(sample.expected) == sample.bytes)
    }

    @Test("a checksum is added and computed over the header with the field zeroed")
    func checksumAdded() throws {
        let header = v2(.proxy, .stream, tcp4Addresses, [ProxyTLV(.authority("example.com"))])
        let bytes = try ProxyHeaderEncoder.encode(header, addingChecksum: true)
        #expect(bytes == checksummed)
    }

    @Test("a CRC32C TLV already present gets the right value")
    func checksumFilledIn() throws {
        let header = v2(.proxy, .stream, tcp4Addresses, [ProxyTLV(.authority("example.com")), ProxyTLV(.crc32c(0xDEAD_BEEF))])
        #expect(try ProxyHeaderEncoder.encode(header) == checksummed)
        #expect(try ProxyHeaderEncoder.encode(header, addingChecksum: true) == checksummed)
    }

    static let unencodableHeaders: [(ProxyHeader, String)] = [
        (v1(.unix(source: [], destination: [])), "UNIX"),
        (ProxyHeader(version: .v1, command: .local, transport: .unspecified, addresses: .unspecified), "LOCAL"),
        (ProxyHeader(version: .v1, transport: .datagram, addresses: tcp4Addresses), "TCP"),
        (ProxyHeader(version: .v1, addresses: tcp4Addresses, tlvs: [ProxyTLV(.noop)]), "TLVs"),
        (v2(.proxy, .stream, .unix(source: [UInt8](repeating: 1, count: 109), destination: [])), "109"),
        (v2(.proxy, .stream, tcp4Addresses, [ProxyTLV(type: 0x03, value: [1])]), "CRC32C"),
        (v2(.proxy, .stream, tcp4Addresses, [ProxyTLV(.crc32c(0)), ProxyTLV(.crc32c(0))]), "more than one"),
        (v2(.proxy, .stream, tcp4Addresses, [ProxyTLV(.uniqueID([UInt8](repeating: 0, count: 129)))]), "UNIQUE_ID"),
        (v2(.proxy, .stream, .unspecified, [ProxyTLV(type: 0xE0, value: [UInt8](repeating: 0, count: 65536))]), "65535"),
        (v2(.proxy, .stream, tcp4Addresses, [ProxyTLV(type: 0xE0, value: [UInt8](repeating: 0, count: 65530))]), "65535"),
    ]

    @Test("what a format cannot say is refused, not altered", arguments: unencodableHeaders)
    func unencodable(_ header: ProxyHeader, _ mentioned: String) {
        let error = #expect(throws: ProxyHeaderError.self) { try ProxyHeaderEncoder.encode(header) }
        #expect(error?.reason == .unencodable)
        #expect(error?.description.contains(mentioned) == true, "\(String(describing: error))")
    }

    @Test("v1 has no checksum")
    func v1NoChecksum() {
        #expect(throws: ProxyHeaderError.self) {
            try ProxyHeaderEncoder.encode(v1(.unspecified), addingChecksum: true)
        }
    }
}

@Suite("Round trip: random headers, encoded, parsed in random chunks")
struct RoundTripTests {
    @Test("random headers come back equal", arguments: 0..<8)
    func roundTrip(_ seed: UInt64) throws {
        var rng = SplitMix64(seed: 0x5052_4F58_5900 + seed)
        for iteration in 0..<250 {
            let header = randomHeader(using: &rng)
            let addChecksum = header.version == .v2 && Bool.random(using: &rng)
            let bytes = try ProxyHeaderEncoder.encode(header, addingChecksum: addChecksum)
            let trailing = (0..<Int.random(in: 0...8, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let delivery = Delivery.randomChunks(seed: rng.next())
            let outcome = deliver(bytes + trailing, delivery, maximumHeaderLength: ProxyHeaderParser.v2ProtocolMaximumLength)
            guard case .complete(var parsed, let consumed) = outcome else {
                Issue.record("iteration \(iteration): \(header) encoded as \(bytes) gave \(outcome)")
                continue
            }
            #expect(consumed == bytes.count)
            if addChecksum {
                let last = parsed.tlvs.popLast()
                let checksum = try #require(last)
                #expect(checksum.type == ProxyTLV.TypeCode.crc32c)
                #expect(checksum.decoded == .crc32c(CRC32C.checksum(bytes.dropLast(4) + [0, 0, 0, 0])))
            }
            #expect(parsed == header, "iteration \(iteration)")
        }
    }
}

func randomHeader(using rng: inout SplitMix64) -> ProxyHeader {
    func bytes(_ range: ClosedRange<Int>, _ values: ClosedRange<UInt8> = 0...255) -> [UInt8] {
        (0..<Int.random(in: range, using: &rng)).map { _ in UInt8.random(in: values, using: &rng) }
    }
    func text(_ range: ClosedRange<Int>) -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789.-_é☃")
        return String((0..<Int.random(in: range, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! })
    }
    func ipv4() -> IPv4Address { IPv4Address(UInt32.random(in: 0...UInt32.max, using: &rng)) }
    func ipv6() -> IPv6Address {
        switch Int.random(in: 0..<4, using: &rng) {
        case 0: return IPv6Address(ipv4Mapped: ipv4())
        case 1: return IPv6Address(high: 0, low: UInt64.random(in: 0...3, using: &rng))
        default:
            var groups = (0..<8).map { _ in UInt16.random(in: 0...UInt16.max, using: &rng) }
            let start = Int.random(in: 0..<8, using: &rng)
            for index in start..<min(8, start + Int.random(in: 0...8, using: &rng)) { groups[index] = 0 }
            return IPv6Address(groups: groups)!
        }
    }
    func port() -> UInt16 { [0, 1, 80, 443, 65535, UInt16.random(in: 0...65535, using: &rng)].randomElement(using: &rng)! }
    func unixPath() -> [UInt8] {
        Bool.random(using: &rng) ? bytes(0...108, 1...255) : [0] + bytes(1...107, 1...255)
    }

    if Int.random(in: 0..<4, using: &rng) == 0 {
        switch Int.random(in: 0..<3, using: &rng) {
        case 0: return v1(.inet(source: .init(ipv4(), port: port()), destination: .init(ipv4(), port: port())))
        case 1: return v1(.inet6(source: .init(ipv6(), port: port()), destination: .init(ipv6(), port: port())))
        default: return v1(.unspecified)
        }
    }

    let addresses: ProxyHeader.Addresses
    switch Int.random(in: 0..<4, using: &rng) {
    case 0: addresses = .unspecified
    case 1: addresses = .inet(source: .init(ipv4(), port: port()), destination: .init(ipv4(), port: port()))
    case 2: addresses = .inet6(source: .init(ipv6(), port: port()), destination: .init(ipv6(), port: port()))
    default: addresses = .unix(source: unixPath(), destination: unixPath())
    }
    var tlvs: [ProxyTLV] = []
    for _ in 0..<Int.random(in: 0...5, using: &rng) {
        let tlv: ProxyTLV
        switch Int.random(in: 0..<10, using: &rng) {
        case 0: tlv = ProxyTLV(.alpn(bytes(0...16)))
        case 1: tlv = ProxyTLV(.authority(text(0...40)))
        case 2: tlv = ProxyTLV(type: ProxyTLV.TypeCode.noop, value: bytes(0...8))
        case 3: tlv = ProxyTLV(.uniqueID(bytes(0...128)))
        case 4:
            let ssl = ProxySSLInfo(
                client: ProxySSLInfo.ClientFlags(rawValue: UInt8.random(in: 0...7, using: &rng)),
                verify: UInt32.random(in: 0...3, using: &rng), version: Bool.random(using: &rng) ? "TLSv1.3" : nil,
                commonName: Bool.random(using: &rng) ? text(0...30) : nil, cipher: text(1...30),
                signatureAlgorithm: Bool.random(using: &rng) ? "SHA256" : nil,
                keyAlgorithm: Bool.random(using: &rng) ? "RSA2048" : nil)
            tlv = ProxyTLV(.ssl(ssl))
        case 5: tlv = ProxyTLV(.netns(text(0...20)))
        case 6: tlv = ProxyTLV(type: UInt8.random(in: 0xE0...0xEF, using: &rng), value: bytes(0...20))
        case 7: tlv = ProxyTLV(type: UInt8.random(in: 0xF0...0xF7, using: &rng), value: bytes(0...20))
        case 8: tlv = ProxyTLV(type: UInt8.random(in: 0xF8...0xFF, using: &rng), value: bytes(0...20))
        default: tlv = ProxyTLV(type: UInt8.random(in: 0x06...0x1F, using: &rng), value: bytes(0...300))
        }
        tlvs.append(tlv)
    }
    let command: ProxyHeader.Command = Int.random(in: 0..<5, using: &rng) == 0 ? .local : .proxy
    let transport = [ProxyHeader.TransportProtocol.unspecified, .stream, .datagram].randomElement(using: &rng)!
    return v2(command, transport, addresses, tlvs)
}

import ProxyProtocol
import Testing

@Suite("IPv4 and IPv6 addresses in their text forms")
struct AddressTests {
    @Test("canonical dotted quads parse", arguments: [
        ("0.0.0.0", UInt32(0)), ("255.255.255.255", 0xFFFF_FFFF), ("192.0.2.1", 0xC000_0201), ("10.0.100.9", 0x0A00_6409),
    ])
    func ipv4Parses(_ text: String, _ value: UInt32) {
        #expect(IPv4Address(text)?.value == value)
        #expect(IPv4Address(value).description == text)
    }

    @Test("every octet value prints as its shortest decimal, in order")
    func ipv4TextForEveryOctet() {
        for octet in UInt32(0)...255 {
            let value = octet << 24 | (255 - octet) << 16 | (octet * 7 % 256) << 8 | octet / 3
            let expected = [value >> 24, value >> 16 & 0xFF, value >> 8 & 0xFF, value & 0xFF].map(String.init).joined(separator: ".")
            #expect(IPv4Address(value).description == expected)
            #expect(IPv4Address(expected)?.value == value)
        }
    }

    @Test("anything else is not a PROXY IPv4 address", arguments: [
        "", "1.2.3", "1.2.3.4.5", "01.2.3.4", "1.2.3.04", "256.0.0.0", "1.2.3.4 ", " 1.2.3.4", "1..2.3",
        "1.2.3.", "a.b.c.d", "1.2.3.-4", "0x1.2.3.4", "1.2.3.1000",
    ])
    func ipv4Rejects(_ text: String) {
        #expect(IPv4Address(text) == nil)
    }

    @Test("IPv6 text parses to its 128 bits", arguments: [
        ("::", [0, 0, 0, 0, 0, 0, 0, 0] as [UInt16]),
        ("::1", [0, 0, 0, 0, 0, 0, 0, 1]),
        ("1::", [1, 0, 0, 0, 0, 0, 0, 0]),
        ("2001:db8::ff00:42:8329", [0x2001, 0xDB8, 0, 0, 0, 0xFF00, 0x42, 0x8329]),
        ("2001:0DB8:0000:0000:0000:FF00:0042:8329", [0x2001, 0xDB8, 0, 0, 0, 0xFF00, 0x42, 0x8329]),
        ("1:2:3:4:5:6:7::", [1, 2, 3, 4, 5, 6, 7, 0]),
        ("::2:3:4:5:6:7:8", [0, 2, 3, 4, 5, 6, 7, 8]),
        ("1:2:3::6:7:8", [1, 2, 3, 0, 0, 6, 7, 8]),
        ("::ffff:192.0.2.1", [0, 0, 0, 0, 0, 0xFFFF, 0xC000, 0x0201]),
        ("::192.0.2.1", [0, 0, 0, 0, 0, 0, 0xC000, 0x0201]),
        ("1:2:3:4:5:6:0.0.0.0", [1, 2, 3, 4, 5, 6, 0, 0]),
        ("1::5:6:255.255.255.255", [1, 0, 0, 0, 5, 6, 0xFFFF, 0xFFFF]),
    ])
    func ipv6Parses(_ text: String, _ groups: [UInt16]) throws {
        let address = try #require(IPv6Address(text))
        #expect((0..<8).map { address[group: $0] } == groups)
        #expect(address == IPv6Address(groups: groups))
    }

    @Test("IPv6 text that is not exactly 128 bits, or breaks the grammar, is refused", arguments: [
        "", ":", ":::", "1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7:8::", "::1:2:3:4:5:6:7:8",
        "1::2::3", "12345::", "g::", ":1::", "1::2:", "1:2:3:4:5:6:7:1.2.3.4", "::1.2.3", "::1.2.3.4.5",
        "::01.2.3.4", "::256.1.1.1", "::1.2.3.4:5", "1:2:3:4:5:6:1.2.3.4:7", "::ffff:1234.1.1.1", " ::1",
    ])
    func ipv6Rejects(_ text: String) {
        #expect(IPv6Address(text) == nil)
    }

    @Test("IPv6 text is written as RFC 5952 says", arguments: [
        ("0:0:0:0:0:0:0:0", "::"),
        ("0:0:0:0:0:0:0:1", "::1"),
        ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),  // leftmost of equal runs
        ("2001:0:0:1:0:0:0:1", "2001:0:0:1::1"),  // longest run
        ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),  // a single zero group stays
        ("1:0:0:0:0:0:0:0", "1::"),
        ("0:0:0:0:0:ffff:c000:201", "::ffff:192.0.2.1"),  // IPv4-mapped
        ("ABCD:EF01:2345:6789:ABCD:EF01:2345:6789", "abcd:ef01:2345:6789:abcd:ef01:2345:6789"),
        ("0:1:0:1:0:1:0:1", "0:1:0:1:0:1:0:1"),
    ])
    func ipv6Canonical(_ text: String, _ canonical: String) throws {
        #expect(try #require(IPv6Address(text)).description == canonical)
    }

    @Test("random IPv6 addresses survive text and back")
    func ipv6RandomRoundTrip() throws {
        var rng = SplitMix64(seed: 5952)
        for _ in 0..<2000 {
            var groups = (0..<8).map { _ in UInt16.random(in: 0...UInt16.max, using: &rng) }
            // Zero runs of random length, to exercise '::'.
            let start = Int.random(in: 0..<8, using: &rng)
            for index in start..<min(8, start + Int.random(in: 0...8, using: &rng)) { groups[index] = 0 }
            let address = try #require(IPv6Address(groups: groups))
            #expect(IPv6Address(address.description) == address, "\(address)")
        }
    }

    @Test("bytes in network order")
    func bytes() throws {
        #expect(IPv4Address(192, 0, 2, 1).bytes == [192, 0, 2, 1])
        let v6 = try #require(IPv6Address("2001:db8::1"))
        #expect(v6.bytes == [0x20, 0x01, 0x0D, 0xB8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])
        #expect(IPv6Address(bytes: v6.bytes) == v6)
        #expect(IPv6Address(ipv4Mapped: IPv4Address(192, 0, 2, 1)).ipv4Mapped == IPv4Address(192, 0, 2, 1))
    }
}

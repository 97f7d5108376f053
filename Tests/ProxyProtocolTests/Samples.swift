import ProxyProtocol
import Testing

/// A valid header and what it must parse to.
struct ValidSample: Sendable, CustomTestStringConvertible {
    let name: String
    let bytes: [UInt8]
    let expected: ProxyHeader
    var testDescription: String { name }
}

/// Bytes that are not a valid header: `accepted` can still begin one, the
/// first byte of `rest` cannot, so the parser must throw `reason` as soon as
/// that byte arrives.
struct InvalidSample: Sendable, CustomTestStringConvertible {
    let name: String
    let accepted: [UInt8]
    let rest: [UInt8]
    let reason: ProxyHeaderError.Reason
    var bytes: [UInt8] { accepted + rest }
    /// Bytes received when the error must be thrown.
    var rejectedAt: Int { accepted.count + 1 }
    var testDescription: String { name }

    init(_ name: String, _ accepted: [UInt8], _ rest: [UInt8], _ reason: ProxyHeaderError.Reason) {
        self.name = name
        self.accepted = accepted
        self.rest = rest
        self.reason = reason
    }

    init(_ name: String, _ accepted: String, _ rest: String, _ reason: ProxyHeaderError.Reason) {
        self.init(name, ascii(accepted), ascii(rest), reason)
    }
}

func v1(_ addresses: ProxyHeader.Addresses) -> ProxyHeader {
    ProxyHeader(
        version: .v1, command: .proxy, transport: addresses == .unspecified ? .unspecified : .stream,
        addresses: addresses)
}

func v2(
    _ command: ProxyHeader.Command = .proxy, _ transport: ProxyHeader.TransportProtocol = .stream,
    _ addresses: ProxyHeader.Addresses, _ tlvs: [ProxyTLV] = []
) -> ProxyHeader {
    ProxyHeader(version: .v2, command: command, transport: transport, addresses: addresses, tlvs: tlvs)
}

// MARK: - Version 1

let ffff8 = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
/// A TCP6 line of exactly 107 bytes (IPv4 tails make addresses longer than 39).
let longTCP6Source = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.1.1"
let longTCP6Destination = "ffff:ffff:ffff:ffff:ffff:ffff:255.25.1.1"
let longestTCP6Line = "PROXY TCP6 \(longTCP6Source) \(longTCP6Destination) 65535 65535\r\n"
let longestUnknownLine = "PROXY UNKNOWN " + String(repeating: "x", count: 91) + "\r\n"

let v1ValidSamples: [ValidSample] = [
    ValidSample(
        name: "TCP4, the spec's example", bytes: ascii("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"),
        expected: v1(inet("192.168.0.1", 56324, "192.168.0.11", 443))),
    ValidSample(
        name: "TCP4, ports 0 and 65535", bytes: ascii("PROXY TCP4 0.0.0.0 10.0.0.1 0 65535\r\n"),
        expected: v1(inet("0.0.0.0", 0, "10.0.0.1", 65535))),
    ValidSample(
        name: "TCP4, longest line (56 bytes)",
        bytes: ascii("PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n"),
        expected: v1(inet("255.255.255.255", 65535, "255.255.255.255", 65535))),
    ValidSample(
        name: "TCP6, compressed", bytes: ascii("PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n"),
        expected: v1(inet6("2001:db8::1", 1, "2001:db8::2", 2))),
    ValidSample(
        name: "TCP6, :: and ::1", bytes: ascii("PROXY TCP6 :: ::1 80 8080\r\n"),
        expected: v1(
            .inet6(
                source: .init(IPv6Address(high: 0, low: 0), port: 80),
                destination: .init(IPv6Address(high: 0, low: 1), port: 8080)))),
    ValidSample(
        name: "TCP6, IPv4 tail and mixed case hex",
        bytes: ascii("PROXY TCP6 ::ffff:192.0.2.1 FFFF:0:0:0:0:0:0:aBcD 65535 0\r\n"),
        expected: v1(
            .inet6(
                source: .init(IPv6Address(high: 0, low: 0x0000_FFFF_C000_0201), port: 65535),
                destination: .init(IPv6Address(high: 0xFFFF_0000_0000_0000, low: 0xABCD), port: 0)))),
    ValidSample(
        name: "TCP6, all eight groups and :: at either end",
        bytes: ascii("PROXY TCP6 1:2:3:4:5:6:7:8 1:2:3:4:5:6:7:: 1 1\r\n"),
        expected: v1(
            .inet6(
                source: .init(IPv6Address(high: 0x0001_0002_0003_0004, low: 0x0005_0006_0007_0008), port: 1),
                destination: .init(IPv6Address(high: 0x0001_0002_0003_0004, low: 0x0005_0006_0007_0000), port: 1)))),
    ValidSample(
        name: "TCP6, longest plain form (104 bytes)", bytes: ascii("PROXY TCP6 \(ffff8) \(ffff8) 65535 65535\r\n"),
        expected: v1(
            .inet6(
                source: .init(IPv6Address(high: .max, low: .max), port: 65535),
                destination: .init(IPv6Address(high: .max, low: .max), port: 65535)))),
    ValidSample(
        name: "TCP6, exactly 107 bytes with IPv4 tails", bytes: ascii(longestTCP6Line),
        expected: v1(
            .inet6(
                source: .init(IPv6Address(high: .max, low: 0xFFFF_FFFF_FFFF_0101), port: 65535),
                destination: .init(IPv6Address(high: .max, low: 0xFFFF_FFFF_FF19_0101), port: 65535)))),
    ValidSample(name: "UNKNOWN, short form", bytes: ascii("PROXY UNKNOWN\r\n"), expected: v1(.unspecified)),
    ValidSample(
        name: "UNKNOWN, long form (rest ignored)", bytes: ascii("PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n"),
        expected: v1(.unspecified)),
    ValidSample(
        name: "UNKNOWN, the spec's worst case (107 bytes)",
        bytes: ascii("PROXY UNKNOWN \(ffff8) \(ffff8) 65535 65535\r\n"), expected: v1(.unspecified)),
    ValidSample(
        name: "UNKNOWN, 107 bytes of anything", bytes: ascii(longestUnknownLine), expected: v1(.unspecified)),
    ValidSample(name: "UNKNOWN, a space then nothing", bytes: ascii("PROXY UNKNOWN \r\n"), expected: v1(.unspecified)),
]

let v1InvalidSamples: [InvalidSample] = [
    InvalidSample("an HTTP request", "", "GET / HTTP/1.1\r\n\r\n", .badSignature),
    InvalidSample("PROXZ", "PROX", "Z TCP4 1.2.3.4 5.6.7.8 1 2\r\n", .badSignature),
    InvalidSample("lower-case proxy", "", "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", .badSignature),
    InvalidSample("tab after PROXY", "PROXY", "\tTCP4 1.2.3.4 5.6.7.8 1 2\r\n", .badSignature),
    InvalidSample("UDP4", "PROXY U", "DP4 1.2.3.4 5.6.7.8 1 2\r\n", .badFamily),
    InvalidSample("TCP5", "PROXY TCP", "5 1.2.3.4 5.6.7.8 1 2\r\n", .badFamily),
    InvalidSample("lower-case tcp4", "PROXY ", "tcp4 1.2.3.4 5.6.7.8 1 2\r\n", .badFamily),
    InvalidSample("TCP without a digit", "PROXY TCP", " 1.2.3.4 5.6.7.8 1 2\r\n", .badFamily),
    InvalidSample("UNKNOWNX", "PROXY UNKNOWN", "X\r\n", .badFamily),
    InvalidSample("TCP4 without addresses", "PROXY TCP4", "\r\n", .badSyntax),
    InvalidSample("IPv4 leading zero", "PROXY TCP4 0", "1.2.3.4 5.6.7.8 1 2\r\n", .badAddress),
    InvalidSample("IPv4 octet 256", "PROXY TCP4 25", "6.1.1.1 5.6.7.8 1 2\r\n", .badAddress),
    InvalidSample("IPv4 with three octets", "PROXY TCP4 1.2.3", " 5.6.7.8 1 2\r\n", .badAddress),
    InvalidSample("IPv4 with five octets", "PROXY TCP4 1.2.3.4", ".5 5.6.7.8 1 2\r\n", .badAddress),
    InvalidSample("IPv4 empty octet", "PROXY TCP4 1.", ".2.3 5.6.7.8 1 2\r\n", .badAddress),
    InvalidSample("IPv6 address in TCP4", "PROXY TCP4 ", "::1 ::1 1 2\r\n", .badAddress),
    InvalidSample("IPv6 destination in TCP4", "PROXY TCP4 1.2.3.4 200", "1:db8::1 1 2\r\n", .badAddress),
    InvalidSample("IPv4 address in TCP6", "PROXY TCP6 1", ".2.3.4 ::1 1 2\r\n", .badAddress),
    InvalidSample("IPv6 with nine groups", "PROXY TCP6 1:2:3:4:5:6:7:8", ":9 ::1 1 2\r\n", .badAddress),
    InvalidSample("IPv6 eight groups and ::", "PROXY TCP6 1:2:3:4:5:6:7:8", ":: ::1 1 2\r\n", .badAddress),
    InvalidSample("IPv6 with seven groups", "PROXY TCP6 1:2:3:4:5:6:7", " ::1 1 2\r\n", .badAddress),
    InvalidSample("IPv6 group of five digits", "PROXY TCP6 1234", "5::1 ::1 1 2\r\n", .badAddress),
    InvalidSample("IPv6 with two ::", "PROXY TCP6 1::2:", ":3 ::1 1 2\r\n", .badAddress),
    InvalidSample("IPv6 :::", "PROXY TCP6 ::", ":1 ::1 1 2\r\n", .badAddress),
    InvalidSample("IPv6 single leading colon", "PROXY TCP6 :", "1::2 ::1 1 2\r\n", .badAddress),
    InvalidSample("IPv6 single trailing colon", "PROXY TCP6 1:", " ::1 1 2\r\n", .badAddress),
    InvalidSample("IPv6 non-hex digit", "PROXY TCP6 ", "g::1 ::1 1 2\r\n", .badAddress),
    InvalidSample("IPv6 IPv4 tail with leading zero", "PROXY TCP6 ::ffff:01", ".2.3.4 ::1 1 2\r\n", .badAddress),
    InvalidSample("IPv6 IPv4 tail after seven groups", "PROXY TCP6 1:2:3:4:5:6:7:1", ".2.3.4 ::1 1 2\r\n", .badAddress),
    InvalidSample("port with leading zero", "PROXY TCP4 1.2.3.4 5.6.7.8 0", "1 2\r\n", .badPort),
    InvalidSample("port 65536", "PROXY TCP4 1.2.3.4 5.6.7.8 6553", "6 2\r\n", .badPort),
    InvalidSample("negative port", "PROXY TCP4 1.2.3.4 5.6.7.8 1 ", "-2\r\n", .badPort),
    InvalidSample("port of six digits", "PROXY TCP4 1.2.3.4 5.6.7.8 1 65535", "0\r\n", .badPort),
    InvalidSample("two spaces before source", "PROXY TCP4 ", " 1.2.3.4 5.6.7.8 1 2\r\n", .badSyntax),
    InvalidSample("two spaces before destination", "PROXY TCP4 1.2.3.4 ", " 5.6.7.8 1 2\r\n", .badSyntax),
    InvalidSample("two spaces before destination port", "PROXY TCP4 1.2.3.4 5.6.7.8 1 ", " 2\r\n", .badSyntax),
    InvalidSample("space before CRLF", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2", " \r\n", .badSyntax),
    InvalidSample("extra field", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2", " 3\r\n", .badSyntax),
    InvalidSample("lone LF", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2", "\n", .badSyntax),
    InvalidSample("lone CR", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r", "X", .badSyntax),
    InvalidSample("CR CR LF", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r", "\r\n", .badSyntax),
    InvalidSample("missing destination port", "PROXY TCP4 1.2.3.4 5.6.7.8 1", "\r\n", .badSyntax),
    InvalidSample("UNKNOWN with lone LF", "PROXY UNKNOWN", "\n", .badSyntax),
    InvalidSample("UNKNOWN with LF inside", "PROXY UNKNOWN foo", "\nbar\r\n", .badSyntax),
    InvalidSample("UNKNOWN with CR CR LF", "PROXY UNKNOWN\r", "\r\n", .badSyntax),
    InvalidSample(
        "UNKNOWN line of 108 bytes", String(longestUnknownLine.prefix(105)) + "x", "\r\n", .tooLong),
    InvalidSample(
        "TCP6 line of 108 bytes",
        "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:255.255.11.1 \(longTCP6Destination) 65535 65535", "\r\n",
        .tooLong),
]

// MARK: - Version 2

let v2InvalidFamilies: [UInt8] = [0x03, 0x13, 0x23, 0x33, 0x40, 0x41, 0xF1, 0x1F]

let tcp4Block = inet4Block([192, 0, 2, 1], [198, 51, 100, 7], 56324, 443)
let tcp4Addresses = inet("192.0.2.1", 56324, "198.51.100.7", 443)
let v6Source: [UInt8] = [0x20, 0x01, 0x0D, 0xB8] + [UInt8](repeating: 0, count: 11) + [1]
let v6Destination: [UInt8] = [0x20, 0x01, 0x0D, 0xB8] + [UInt8](repeating: 0, count: 11) + [2]
let tcp6Block = v6Source + v6Destination + be16(1234) + be16(443)
let tcp6Addresses = inet6("2001:db8::1", 1234, "2001:db8::2", 443)
let unixBlock = sunPath(ascii("/var/run/client.sock")) + sunPath([0] + ascii("abstract"))
let unixAddresses = ProxyHeader.Addresses.unix(source: ascii("/var/run/client.sock"), destination: [0] + ascii("abstract"))

let sslValue: [UInt8] =
    [0x07] + be32(0) + tlv(0x21, ascii("TLSv1.3")) + tlv(0x22, ascii("client.example"))
    + tlv(0x23, ascii("TLS_AES_128_GCM_SHA256")) + tlv(0x24, ascii("SHA256")) + tlv(0x25, ascii("RSA2048"))
let uniqueID128 = [UInt8]((0..<128).map { UInt8($0) })
let everyTLVBody: [UInt8] =
    tcp4Block + tlv(0x01, ascii("h2")) + tlv(0x02, ascii("example.com")) + tlv(0x04, [0, 0, 0])
    + tlv(0x05, uniqueID128) + tlv(0x20, sslValue) + tlv(0x30, ascii("blue")) + tlv(0xE0, [1, 2])
    + tlv(0xEF, []) + tlv(0xF0, [3]) + tlv(0xF7, [4]) + tlv(0xF8, [5]) + tlv(0xFF, [6]) + tlv(0x06, [7])
let everyTLV: [ProxyTLV] = [
    ProxyTLV(type: 0x01, value: ascii("h2")), ProxyTLV(type: 0x02, value: ascii("example.com")),
    ProxyTLV(type: 0x04, value: [0, 0, 0]), ProxyTLV(type: 0x05, value: uniqueID128),
    ProxyTLV(type: 0x20, value: sslValue), ProxyTLV(type: 0x30, value: ascii("blue")),
    ProxyTLV(type: 0xE0, value: [1, 2]), ProxyTLV(type: 0xEF, value: []), ProxyTLV(type: 0xF0, value: [3]),
    ProxyTLV(type: 0xF7, value: [4]), ProxyTLV(type: 0xF8, value: [5]), ProxyTLV(type: 0xFF, value: [6]),
    ProxyTLV(type: 0x06, value: [7]),
]

let checksummed = v2HeaderWithChecksum(0x21, 0x11, tcp4Block + tlv(0x02, ascii("example.com")))

let v2ValidSamples: [ValidSample] = [
    ValidSample(name: "LOCAL, no addresses", bytes: v2Header(0x20, 0x00), expected: v2(.local, .unspecified, .unspecified)),
    ValidSample(
        name: "LOCAL with an address block and a TLV (read, though the receiver ignores them)",
        bytes: v2Header(0x20, 0x11, tcp4Block + tlv(0x05, [9])),
        expected: v2(.local, .stream, tcp4Addresses, [ProxyTLV(type: 0x05, value: [9])])),
    ValidSample(
        name: "LOCAL with an undefined family (ignored)", bytes: v2Header(0x20, 0x41, [1, 2, 3]),
        expected: v2(.local, .unspecified, .unspecified)),
    ValidSample(
        name: "LOCAL with a body that is not TLVs (skipped)", bytes: v2Header(0x20, 0x00, [1, 2, 3, 4, 5]),
        expected: v2(.local, .unspecified, .unspecified)),
    ValidSample(
        name: "PROXY UNSPEC", bytes: v2Header(0x21, 0x00), expected: v2(.proxy, .unspecified, .unspecified)),
    ValidSample(
        name: "PROXY UNSPEC family, STREAM, with a TLV", bytes: v2Header(0x21, 0x01, tlv(0x01, ascii("h2"))),
        expected: v2(.proxy, .stream, .unspecified, [ProxyTLV(type: 0x01, value: ascii("h2"))])),
    ValidSample(
        name: "PROXY TCP over IPv4", bytes: v2Header(0x21, 0x11, tcp4Block), expected: v2(.proxy, .stream, tcp4Addresses)),
    ValidSample(
        name: "PROXY UDP over IPv4", bytes: v2Header(0x21, 0x12, tcp4Block),
        expected: v2(.proxy, .datagram, tcp4Addresses)),
    ValidSample(
        name: "PROXY IPv4 with UNSPEC transport", bytes: v2Header(0x21, 0x10, tcp4Block),
        expected: v2(.proxy, .unspecified, tcp4Addresses)),
    ValidSample(
        name: "PROXY TCP over IPv4, ports 0 and 65535",
        bytes: v2Header(0x21, 0x11, inet4Block([0, 0, 0, 0], [255, 255, 255, 255], 0, 65535)),
        expected: v2(.proxy, .stream, inet("0.0.0.0", 0, "255.255.255.255", 65535))),
    ValidSample(
        name: "PROXY TCP over IPv6", bytes: v2Header(0x21, 0x21, tcp6Block), expected: v2(.proxy, .stream, tcp6Addresses)),
    ValidSample(
        name: "PROXY UDP over IPv6", bytes: v2Header(0x21, 0x22, tcp6Block),
        expected: v2(.proxy, .datagram, tcp6Addresses)),
    ValidSample(
        name: "PROXY UNIX stream (path and abstract name)", bytes: v2Header(0x21, 0x31, unixBlock),
        expected: v2(.proxy, .stream, unixAddresses)),
    ValidSample(
        name: "PROXY UNIX datagram, unnamed sockets", bytes: v2Header(0x21, 0x32, sunPath([]) + sunPath([])),
        expected: v2(.proxy, .datagram, .unix(source: [], destination: []))),
    ValidSample(
        name: "PROXY UNIX, bytes after the path's NUL are not part of it",
        bytes: v2Header(0x21, 0x31, sunPath(ascii("/a") + [0] + ascii("junk")) + sunPath(ascii("/b"))),
        expected: v2(.proxy, .stream, .unix(source: ascii("/a"), destination: ascii("/b")))),
    ValidSample(
        name: "PROXY TCP4 with every kind of TLV", bytes: v2Header(0x21, 0x11, everyTLVBody),
        expected: v2(.proxy, .stream, tcp4Addresses, everyTLV)),
    ValidSample(
        name: "PROXY TCP4 with a valid CRC32C", bytes: checksummed,
        expected: v2(
            .proxy, .stream, tcp4Addresses,
            [ProxyTLV(type: 0x02, value: ascii("example.com")), ProxyTLV(type: 0x03, value: Array(checksummed.suffix(4)))])),
    ValidSample(
        name: "PROXY TCP4, declared length covers NOOP padding after the addresses",
        bytes: v2Header(0x21, 0x11, tcp4Block + tlv(0x04, [0, 0, 0, 0, 0])),
        expected: v2(.proxy, .stream, tcp4Addresses, [ProxyTLV(type: 0x04, value: [0, 0, 0, 0, 0])])),
    ValidSample(
        name: "PROXY TCP4, empty TLV values", bytes: v2Header(0x21, 0x11, tcp4Block + tlv(0x01, []) + tlv(0x05, [])),
        expected: v2(.proxy, .stream, tcp4Addresses, [ProxyTLV(type: 0x01, value: []), ProxyTLV(type: 0x05, value: [])])),
    ValidSample(
        name: "PROXY UNIX with a TLV", bytes: v2Header(0x21, 0x31, unixBlock + tlv(0x30, ascii("ns1"))),
        expected: v2(.proxy, .stream, unixAddresses, [ProxyTLV(type: 0x30, value: ascii("ns1"))])),
]

func tcp4With(_ tlvs: [UInt8]) -> [UInt8] { v2Header(0x21, 0x11, tcp4Block + tlvs) }

/// A v2 header, all but its last byte, and that last byte: for errors only
/// the complete body can reveal.
func invalidBody(_ name: String, _ bytes: [UInt8], _ reason: ProxyHeaderError.Reason) -> InvalidSample {
    InvalidSample(name, Array(bytes.dropLast()), [bytes.last!], reason)
}

let v2InvalidSamples: [InvalidSample] = [
    InvalidSample("TLS ClientHello", [], [0x16, 0x03, 0x01, 0x00, 0xA5], .badSignature),
    InvalidSample("signature broken at the NUL", [0x0D, 0x0A, 0x0D, 0x0A], [0x01] + Array(v2Signature.dropFirst(5)), .badSignature),
    InvalidSample("signature broken at QUIT", Array(v2Signature.prefix(8)), ascii("XIT\n") + [0x21, 0x11, 0, 0], .badSignature),
    InvalidSample("CRLF then HTTP", [0x0D, 0x0A], ascii("GET / HTTP/1.1\r\n"), .badSignature),
    InvalidSample("version 1", v2Signature, [0x11, 0x11, 0, 12] + tcp4Block, .badVersion),
    InvalidSample("version 3", v2Signature, [0x31, 0x11, 0, 12] + tcp4Block, .badVersion),
    InvalidSample("version 0", v2Signature, [0x00, 0x00, 0, 0], .badVersion),
    InvalidSample("command 2", v2Signature, [0x22, 0x11, 0, 12] + tcp4Block, .badCommand),
    InvalidSample("command 15", v2Signature, [0x2F, 0x00, 0, 0], .badCommand),
] + v2InvalidFamilies.map { family in
    InvalidSample("PROXY with family byte 0x\(String(family, radix: 16))", v2Signature + [0x21], [family, 0, 0], .badFamily)
} + [
    InvalidSample(
        "declared length over the default limit (high byte)", v2Signature + [0x21, 0x11], [0x10, 0x00], .tooLong),
    InvalidSample(
        "declared length one over the default limit", v2Signature + [0x21, 0x11, 0x0F], [0xF1], .tooLong),
    InvalidSample(
        "declared length 65535 (over the default limit)", v2Signature + [0x21, 0x00], [0xFF, 0xFF], .tooLong),
    InvalidSample("IPv4 address block longer than the header", v2Signature + [0x21, 0x11, 0], [11] + tcp4Block, .badAddress),
    InvalidSample("IPv6 address block longer than the header", v2Signature + [0x21, 0x21, 0], [35] + tcp6Block, .badAddress),
    InvalidSample("UNIX address block longer than the header", v2Signature + [0x21, 0x31, 0], [200] + unixBlock, .badAddress),
    invalidBody("TLV running past the end", tcp4With(tlv(0x01, [1, 2], length: 3)), .badTLV),
    InvalidSample(
        "TLV running past the declared length (though more bytes follow)",
        Array(v2Header(0x21, 0x11, length: 12 + 4, tcp4Block + tlv(0x01, [1, 2])).prefix(31)), [1, 2], .badTLV),
    invalidBody("two stray bytes after the addresses", tcp4With([0, 0]), .badTLV),
    invalidBody("CRC32C mismatch", v2HeaderWithChecksum(0x21, 0x11, tcp4Block, xor: 1), .crcMismatch),
    invalidBody("CRC32C mismatch on LOCAL", v2HeaderWithChecksum(0x20, 0x00, [], xor: 0x8000_0000), .crcMismatch),
    invalidBody("CRC32C of 3 bytes", tcp4With(tlv(0x03, [0, 0, 0])), .badTLV),
    invalidBody("CRC32C of 5 bytes", tcp4With(tlv(0x03, [0, 0, 0, 0, 0])), .badTLV),
    invalidBody("two CRC32C TLVs", tcp4With(tlv(0x03, [0, 0, 0, 0]) + tlv(0x03, [0, 0, 0, 0])), .badTLV),
    invalidBody("UNIQUE_ID of 129 bytes", tcp4With(tlv(0x05, uniqueID128 + [0])), .badTLV),
    invalidBody("AUTHORITY not UTF-8", tcp4With(tlv(0x02, [0x65, 0xFF, 0x65])), .badTLV),
    invalidBody("NETNS not UTF-8", tcp4With(tlv(0x30, [0xC3])), .badTLV),
    invalidBody("SSL shorter than client and verify", tcp4With(tlv(0x20, [1, 0, 0, 0])), .badTLV),
    invalidBody("SSL sub-TLV running past the end", tcp4With(tlv(0x20, [1, 0, 0, 0, 0] + tlv(0x21, ascii("TLS"), length: 4))), .badTLV),
    invalidBody("SSL sub-TLV header cut short", tcp4With(tlv(0x20, [1, 0, 0, 0, 0, 0x21])), .badTLV),
    invalidBody("SSL CN not UTF-8", tcp4With(tlv(0x20, [1, 0, 0, 0, 0] + tlv(0x22, [0xFE]))), .badTLV),
]

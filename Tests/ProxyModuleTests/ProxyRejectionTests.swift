import Foundation
import NetHost
import NetHostTestSupport
import ProxyProtocol
import Testing

struct MalformedHeader: Sendable, CustomTestStringConvertible {
    var name: String
    var bytes: [UInt8]
    /// Part of the logged reason.
    var reason: String
    var testDescription: String { name }

    init(_ name: String, _ text: String, _ reason: String) {
        self.init(name, Array(text.utf8), reason)
    }

    init(_ name: String, _ bytes: [UInt8], _ reason: String) {
        self.name = name
        self.bytes = bytes
        self.reason = reason
    }

    static let all: [MalformedHeader] = [
        .init("an HTTP request", "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
              "byte 0 does not continue a PROXY protocol signature"),
        .init("a TLS ClientHello", [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC, 0x03, 0x03],
              "byte 0 does not continue a PROXY protocol signature"),
        .init("v1 with an IPv4 octet over 255", "PROXY TCP4 203.0.113.256 192.0.2.1 51234 443\r\n",
              "PROXY v1: source address is not a canonical IPv4 dotted quad"),
        .init("v1 with an IPv4 address in TCP6", "PROXY TCP6 203.0.113.7 2001:db8::1 51234 443\r\n",
              "PROXY v1: source address is not an IPv6 address of exactly 128 bits"),
        .init("v1 with a leading zero in an address", "PROXY TCP4 203.0.113.07 192.0.2.1 51234 443\r\n",
              "PROXY v1: source address is not a canonical IPv4 dotted quad"),
        .init("v1 with a leading zero in a port", "PROXY TCP4 203.0.113.7 192.0.2.1 051234 443\r\n",
              "PROXY v1: source port is not a decimal number 0-65535 without leading zeros"),
        .init("v1 with a port over 65535", "PROXY TCP4 203.0.113.7 192.0.2.1 51234 65536\r\n",
              "PROXY v1: destination port is not a decimal number 0-65535 without leading zeros"),
        .init("v1 with an unknown protocol", "PROXY UDP4 203.0.113.7 192.0.2.1 51234 443\r\n",
              "PROXY v1: unknown protocol at byte 7, expected TCP4, TCP6 or UNKNOWN"),
        .init("v1 with two spaces", "PROXY TCP4  203.0.113.7 192.0.2.1 51234 443\r\n",
              "PROXY v1: expected exactly one space between fields"),
        .init("a v1 line over 107 bytes", "PROXY UNKNOWN " + String(repeating: "x", count: 120) + "\r\n",
              "PROXY v1: no CRLF within the first 107 bytes"),
        .init("v1 ending in a lone LF", "PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\n",
              "PROXY v1: LF without a preceding CR"),
        .init("v1 with CR not followed by LF", "PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\r\n",
              "PROXY v1: CR not followed by LF"),
        .init("v2 version 1", Headers.v2Prefix(0x11, 0x11, length: 12) + [UInt8](repeating: 1, count: 12),
              "PROXY v2: version 1 in byte 12 (0x11), only version 2 is defined"),
        .init("v2 command 15", Headers.v2Prefix(0x2F, 0x11, length: 12) + [UInt8](repeating: 1, count: 12),
              "PROXY v2: command 15 in byte 12 (0x2F) is neither LOCAL (0) nor PROXY (1)"),
        .init("v2 undefined family", Headers.v2Prefix(0x21, 0x41, length: 12) + [UInt8](repeating: 1, count: 12),
              "PROXY v2: family/transport byte 0x41 is undefined"),
        .init("v2 length too short for the addresses", Headers.v2Prefix(0x21, 0x21, length: 12) + [UInt8](repeating: 1, count: 12),
              "PROXY v2: family 0x21 needs a 36-byte address block but the header declares 12 bytes"),
        .init("v2 over the 4096-byte default limit", Headers.v2Prefix(0x21, 0x11, length: 0xFFFF),
              "PROXY v2: header of 65296 bytes exceeds the limit of 4096 bytes"),
        .init("v2 with a CRC32C mismatch", crcMismatch, "PROXY v2: CRC32C mismatch, header says 0x"),
        .init("v2 with a TLV overrunning the header",
              Headers.v2Prefix(0x21, 0x11, length: 12 + 3 + 2) + [UInt8](repeating: 1, count: 12) + [0x02, 0x00, 0x10, 0x61, 0x62],
              "PROXY v2: TLV 0x02 (AUTHORITY) at byte 28: declares 16 value bytes but only 2 remain in the header"),
        .init("v2 with a UNIQUE_ID over 128 bytes",
              Headers.v2Prefix(0x21, 0x11, length: 12 + 3 + 129) + [UInt8](repeating: 1, count: 12)
                + [0x05, 0x00, 0x81] + [UInt8](repeating: 7, count: 129),
              "PROXY v2: TLV 0x05 (UNIQUE_ID) at byte 28: value is 129 bytes, at most 128 allowed"),
    ]

    /// A good v2 header with a checksum, then one address byte changed.
    static var crcMismatch: [UInt8] {
        var bytes = (try? Headers.v2(Headers.inet, tlvs: [ProxyTLV(.authority("example.com"))], checksum: true)) ?? []
        bytes[16] ^= 0x01
        return bytes
    }
}

extension NetProxyEndToEnd {
    /// Bad input gets a clear outcome: the connection closed at once, a log line
    /// saying what was wrong and from where, and nothing else disturbed.
    @Suite("Rejection of malformed headers")
    struct Rejection {
        /// A few of the table, over a real socket: the server closes the connection
        /// for the bad bytes (not for running out of time) and goes on serving.
        /// (Every entry, and that no time passes: ProxyHeaderStageTests.)
        static let overSockets = MalformedHeader.all.filter {
            ["an HTTP request", "a TLS ClientHello", "v2 over the 4096-byte default limit"].contains($0.name)
        }

        @Test("a malformed header is closed for what it is, logged with its reason and peer; the next connection is served",
              arguments: overSockets)
        func malformed(header: MalformedHeader) async throws {
            #expect(!header.bytes.isEmpty)
            try await withProxyHost(options: { _ in ["proxy_header_timeout": .integer(10)] }) { host in
                let client = try host.connect()
                try client.send(header.bytes)
                let received = try client.readToEnd()
                #expect(received.isEmpty, "the service never saw the connection")
                #expect(!host.logs.contains("no complete PROXY header"), "closed by the time limit, not for its bytes")
                let line = host.logLine("invalid PROXY header: ", header.reason)
                #expect(line != nil, "log:\n\(host.logs.all.joined(separator: "\n"))")
                #expect(line?.contains("peer=127.0.0.1:\(client.localPort)") == true)
                #expect(line?.contains("port=\(host.port)") == true)
                #expect(line?.hasPrefix("warning ") == true)
                #expect(try host.servesAGoodConnection())
            }
        }

        @Test("proxy_max_header_size bounds v2 headers: one byte over is refused, the limit itself accepted")
        func maximumHeaderSize() async throws {
            // 16 + 12 address bytes + 3 + value: a custom TLV makes up the size.
            func header(size: Int) throws -> [UInt8] {
                try Headers.v2(Headers.inet, tlvs: [ProxyTLV(type: 0xE0, value: [UInt8](repeating: 0x41, count: size - 31))])
            }
            try await withProxyHost(options: { _ in ["proxy_max_header_size": .integer(300)] }) { host in
                let exact = try header(size: 300)
                #expect(exact.count == 300)
                let accepted = try host.connect()
                try accepted.send(exact)
                let report = try accepted.report()
                #expect(report["ip"] == "203.0.113.7")
                #expect(report["tlvs"] == "224:custom:" + String(repeating: "41", count: 269))

                let refused = try host.connect()
                try refused.send(try header(size: 301))
                #expect(try refused.readToEnd().isEmpty)
                #expect(host.logLine("invalid PROXY header: PROXY v2: header of 301 bytes exceeds the limit of 300 bytes",
                                     "peer=127.0.0.1:\(refused.localPort)") != nil)
            }
        }

        @Test("a peer that hangs up mid-header is logged; the server carries on")
        func hangUpMidHeader() async throws {
            try await withProxyHost { host in
                var localPort = 0
                do {
                    let client = try host.connect()
                    localPort = client.localPort
                    try client.send("PROXY TCP4 203.0.")
                }  // closed here; the log line below is the server noticing
                #expect(host.logLine(
                    "the peer closed the connection before the PROXY header was complete",
                    "received_bytes=17", "peer=127.0.0.1:\(localPort)") != nil)
                #expect(try host.servesAGoodConnection())
            }
        }
    }
}

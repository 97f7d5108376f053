import ProxyProtocol
import Testing

/// One hostile peer for ``HostileInputTests``: what it sends and how, and what
/// nethost must make of it (the outcome it counts, the line it logs).
struct HostileInput: Sendable, CustomTestStringConvertible {
    enum Behaviour: Sendable {
        /// Sends the bytes (maybe none), then waits: nethost must close, at once
        /// or at the header timeout.
        case send([UInt8])
        /// Sends the bytes one at a time, `every` apart, until nethost closes.
        case drip([UInt8], every: Duration)
        /// Sends the bytes, then closes (FIN).
        case sendThenClose([UInt8])
        /// Sends the bytes, then shuts down its sending side; nethost sees the
        /// end of the stream and must close.
        case sendThenHalfClose([UInt8])
        /// Sends the bytes, gives nethost time to read them, then aborts the
        /// connection (SO_LINGER 0: a reset).
        case sendThenReset([UInt8])
    }

    /// The `net_proxy` outcome counted for the connection (`ProxyStatistics.Outcome`).
    enum Outcome: String, Sendable {
        case invalid
        case timeout
        case closedEarly = "closed_early"
        case untrusted
    }

    let name: String
    let behaviour: Behaviour
    let outcome: Outcome
    /// The counted reason of an invalid header (`badSignature`, ...).
    let reason: String?
    /// Text of the log line about it (which also names the peer).
    let logText: String
    /// `received_bytes` in that line, where the test knows it for sure.
    let receivedBytes: Int?
    /// Whether it comes from an address in `proxy_trusted_proxies`.
    let trusted: Bool
    /// The client address its header claims, where the test checks the service never saw it.
    var spoofedClient: String? = nil
    /// Its place in ``all``: gives it its own source address and its liveness check its own client.
    private(set) var index = 0

    /// 127.0.0.10 and up for trusted peers; 127.0.0.200 and up for untrusted ones.
    private(set) var source = ""

    var testDescription: String { "\(self.name) [from \(self.source)]" }

    /// The level of its log line, as nethost writes it.
    var logLevel: String { self.outcome == .closedEarly ? "info" : "warn" }

    // MARK: Kinds

    static func invalid(_ name: String, _ bytes: [UInt8], reason: ProxyHeaderError.Reason, log: String) -> HostileInput {
        HostileInput(
            name: name, behaviour: .send(bytes), outcome: .invalid, reason: reason.rawValue,
            logText: "invalid PROXY header: \(log)", receivedBytes: nil, trusted: true)
    }

    static func invalid(_ name: String, _ text: String, reason: ProxyHeaderError.Reason, log: String) -> HostileInput {
        invalid(name, Array(text.utf8), reason: reason, log: log)
    }

    /// Closed at `proxy_header_timeout`; `receivedBytes` nil when it depends on timing.
    static func timeout(_ name: String, _ behaviour: Behaviour, receivedBytes: Int?) -> HostileInput {
        HostileInput(
            name: name, behaviour: behaviour, outcome: .timeout, reason: nil,
            logText: "no complete PROXY header within", receivedBytes: receivedBytes, trusted: true)
    }

    static func closedEarly(_ name: String, _ behaviour: Behaviour, receivedBytes: Int?) -> HostileInput {
        HostileInput(
            name: name, behaviour: behaviour, outcome: .closedEarly, reason: nil,
            logText: "the peer closed the connection before the PROXY header was complete",
            receivedBytes: receivedBytes, trusted: true)
    }

    static func untrusted(_ name: String, _ bytes: [UInt8], claiming client: String?) -> HostileInput {
        HostileInput(
            name: name, behaviour: .send(bytes), outcome: .untrusted, reason: nil,
            logText: "refused a connection from an untrusted peer (not in proxy_trusted_proxies)",
            receivedBytes: nil, trusted: false, spoofedClient: client)
    }

    // MARK: The table

    static let all: [HostileInput] = {
        var trusted = 0
        var untrusted = 0
        return kinds.enumerated().map { index, input in
            var input = input
            input.index = index + 1
            if input.trusted {
                input.source = "127.0.0.\(10 + trusted)"
                trusted += 1
            } else {
                input.source = "127.0.0.\(200 + untrusted)"
                untrusted += 1
            }
            precondition(trusted <= 118 && untrusted <= 56, "more hostile inputs than source addresses")
            return input
        }
    }()

    private static let v1 = "PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n"
    private static let dripInterval = Duration.milliseconds(200)

    private static var kinds: [HostileInput] {
        let v2 = encoded { try HostileBytes.v2() }
        let addresses = [UInt8](repeating: 1, count: 12)
        let v2WithTLV = encoded { try HostileBytes.v2(tlvs: [ProxyTLV(.authority("example.com"))]) }
        return [
            // v1, malformed
            .invalid("v1: unknown protocol UDP4", "PROXY UDP4 203.0.113.7 192.0.2.1 51234 443\r\n",
                     reason: .badFamily, log: "PROXY v1: unknown protocol at byte"),
            .invalid("v1: protocol in lowercase (tcp4)", "PROXY tcp4 203.0.113.7 192.0.2.1 51234 443\r\n",
                     reason: .badFamily, log: "PROXY v1: unknown protocol at byte 6"),
            .invalid("v1: IPv4 octet over 255", "PROXY TCP4 203.0.113.256 192.0.2.1 51234 443\r\n",
                     reason: .badAddress, log: "PROXY v1: source address is not a canonical IPv4 dotted quad"),
            .invalid("v1: a host name for the source address", "PROXY TCP4 example.com 192.0.2.1 51234 443\r\n",
                     reason: .badAddress, log: "PROXY v1: source address is not a canonical IPv4 dotted quad"),
            .invalid("v1: an IPv6 address under TCP4", "PROXY TCP4 2001:db8::7 192.0.2.1 51234 443\r\n",
                     reason: .badAddress, log: "PROXY v1: source address is not a canonical IPv4 dotted quad"),
            .invalid("v1: an IPv4 address under TCP6", "PROXY TCP6 203.0.113.7 2001:db8::1 51234 443\r\n",
                     reason: .badAddress, log: "PROXY v1: source address is not an IPv6 address of exactly 128 bits"),
            .invalid("v1: destination port 65536", "PROXY TCP4 203.0.113.7 192.0.2.1 51234 65536\r\n",
                     reason: .badPort, log: "PROXY v1: destination port is not a decimal number 0-65535"),
            .invalid("v1: negative source port", "PROXY TCP4 203.0.113.7 192.0.2.1 -1 443\r\n",
                     reason: .badPort, log: "PROXY v1: source port is not a decimal number 0-65535"),
            .invalid("v1: LF without CR", "PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\n",
                     reason: .badSyntax, log: "PROXY v1: LF without a preceding CR"),
            .invalid("v1: CR not followed by LF", "PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\rX",
                     reason: .badSyntax, log: "PROXY v1: CR not followed by LF"),
            .invalid("v1: two spaces between fields", "PROXY TCP4  203.0.113.7 192.0.2.1 51234 443\r\n",
                     reason: .badSyntax, log: "PROXY v1: expected exactly one space between fields"),
            .invalid("v1: a space before CRLF", "PROXY TCP4 203.0.113.7 192.0.2.1 51234 443 \r\n",
                     reason: .badSyntax, log: "PROXY v1: expected CRLF after the destination port"),
            .invalid("v1: the destination port missing", "PROXY TCP4 203.0.113.7 192.0.2.1 51234\r\n",
                     reason: .badSyntax, log: "PROXY v1: the line ends before all fields were given"),
            .invalid("v1: a line over 107 bytes", "PROXY UNKNOWN " + String(repeating: "x", count: 120) + "\r\n",
                     reason: .tooLong, log: "PROXY v1: no CRLF within the first 107 bytes"),
            .invalid("v1: \"proxy\" in lowercase", "proxy TCP4 203.0.113.7 192.0.2.1 51234 443\r\n",
                     reason: .badSignature, log: "byte 0 does not continue a PROXY protocol signature"),
            .invalid("v1: no space after PROXY", "PROXYTCP4 203.0.113.7 192.0.2.1 51234 443\r\n",
                     reason: .badSignature, log: "byte 5 does not continue a PROXY protocol signature"),

            // v2, malformed
            .invalid("v2: version 1", HostileBytes.v2Prefix(0x11, 0x11, length: 12) + addresses,
                     reason: .badVersion, log: "PROXY v2: version 1 in byte 12 (0x11), only version 2 is defined"),
            .invalid("v2: command 15", HostileBytes.v2Prefix(0x2F, 0x11, length: 12) + addresses,
                     reason: .badCommand, log: "PROXY v2: command 15 in byte 12 (0x2F) is neither LOCAL (0) nor PROXY (1)"),
            .invalid("v2: undefined address family 4", HostileBytes.v2Prefix(0x21, 0x41, length: 12) + addresses,
                     reason: .badFamily, log: "PROXY v2: family/transport byte 0x41 is undefined"),
            .invalid("v2: undefined transport 3", HostileBytes.v2Prefix(0x21, 0x13, length: 12) + addresses,
                     reason: .badFamily, log: "PROXY v2: family/transport byte 0x13 is undefined"),
            .invalid("v2: IPv6 addresses overrun the declared length",
                     HostileBytes.v2Prefix(0x21, 0x21, length: 12) + addresses, reason: .badAddress,
                     log: "PROXY v2: family 0x21 needs a 36-byte address block but the header declares 12 bytes"),
            .invalid("v2: length claiming 65535 bytes", HostileBytes.v2Prefix(0x21, 0x11, length: 0xFFFF),
                     reason: .tooLong, log: "PROXY v2: header of 65296 bytes exceeds the limit of 4096 bytes"),
            .invalid("v2: a truncated TLV (2 of its 3 header bytes)",
                     HostileBytes.v2Prefix(0x21, 0x11, length: 14) + addresses + [0x04, 0x00], reason: .badTLV,
                     log: "PROXY v2: TLV 0x04 (NOOP) at byte 28: only 2 bytes left, a TLV needs 3 for type and length"),
            .invalid("v2: a TLV overrunning the header",
                     HostileBytes.v2Prefix(0x21, 0x11, length: 17) + addresses + [0x02, 0x00, 0x10, 0x61, 0x62],
                     reason: .badTLV, log: "PROXY v2: TLV 0x02 (AUTHORITY) at byte 28: declares 16 value bytes but only 2 remain in the header"),
            .invalid("v2: a CRC32C TLV that does not match", crcMismatch,
                     reason: .crcMismatch, log: "PROXY v2: CRC32C mismatch, header says 0x"),
            .invalid("v2: one signature byte wrong", v2.enumerated().map { $0.offset == 7 ? 0x52 : $0.element },
                     reason: .badSignature, log: "byte 7 does not continue a PROXY protocol signature"),

            // Not PROXY at all
            .invalid("an HTTP GET", "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
                     reason: .badSignature, log: "byte 0 does not continue a PROXY protocol signature"),
            .invalid("a TLS ClientHello", tlsClientHello,
                     reason: .badSignature, log: "byte 0 does not continue a PROXY protocol signature"),
            .invalid("an SSH banner", "SSH-2.0-OpenSSH_9.6\r\n",
                     reason: .badSignature, log: "byte 0 does not continue a PROXY protocol signature"),
            .invalid("random bytes", randomBytes,
                     reason: .badSignature, log: "byte 0 does not continue a PROXY protocol signature"),

            // Partial, then silence: closed at the header timeout
            .timeout("silent: connects and sends nothing", .send([]), receivedBytes: 0),
            .timeout("v1 cut short, then silence", .send(Array(v1.utf8.prefix(25))), receivedBytes: 25),
            .timeout("v1 without its CRLF, then silence", .send(Array(v1.utf8.dropLast(2))), receivedBytes: v1.utf8.count - 2),
            .timeout("v2 signature only, then silence", .send(Array(v2.prefix(12))), receivedBytes: 12),
            .timeout("v2 whose length overruns the bytes sent, then silence",
                     .send(Array(v2WithTLV.dropLast(5))), receivedBytes: v2WithTLV.count - 5),
            .timeout("drip: a v1 header, one byte every 200 ms", .drip(Array(v1.utf8), every: dripInterval), receivedBytes: nil),
            .timeout("drip: a v2 header, one byte every 200 ms", .drip(v2, every: dripInterval), receivedBytes: nil),

            // Partial, then the peer leaves
            .closedEarly("empty: connects and closes at once", .sendThenClose([]), receivedBytes: 0),
            .closedEarly("v1 cut short, then close", .sendThenClose(Array(v1.utf8.prefix(17))), receivedBytes: 17),
            .closedEarly("v2 cut short, then close", .sendThenClose(Array(v2.prefix(20))), receivedBytes: 20),
            .closedEarly("v1 cut short, then half-close (shutdown SHUT_WR)",
                         .sendThenHalfClose(Array(v1.utf8.prefix(30))), receivedBytes: 30),
            .closedEarly("v1 cut short, then reset (SO_LINGER 0)", .sendThenReset(Array(v1.utf8.prefix(20))), receivedBytes: nil),
            .closedEarly("v2 cut short, then reset (SO_LINGER 0)", .sendThenReset(Array(v2.prefix(15))), receivedBytes: nil),

            // Valid headers from a peer that is not a trusted proxy
            .untrusted("untrusted: a valid v1 header claiming 203.0.113.66",
                       Array("PROXY TCP4 203.0.113.66 192.0.2.1 51234 443\r\nhello\n".utf8), claiming: "203.0.113.66"),
            .untrusted("untrusted: a valid v2 header claiming 203.0.113.67",
                       encoded { try HostileBytes.v2(source: "203.0.113.67") } + Array("hello\n".utf8), claiming: "203.0.113.67"),
            .untrusted("untrusted: a v2 LOCAL header (a health check)",
                       encoded { try HostileBytes.v2(command: .local) }, claiming: nil),
            .untrusted("untrusted: silent", [], claiming: nil),
        ]
    }

    /// A valid v2 header with a CRC32C TLV, then one address byte changed.
    private static var crcMismatch: [UInt8] {
        var bytes = encoded { try HostileBytes.v2(tlvs: [ProxyTLV(.authority("example.com"))], checksum: true) }
        bytes[16] ^= 0x01
        return bytes
    }

    /// The bytes `build` makes; the table is static, so a header the encoder
    /// refuses is a mistake in the table, not a test failure.
    private static func encoded(_ build: () throws -> [UInt8]) -> [UInt8] {
        do {
            return try build()
        } catch {
            preconditionFailure("a header in the hostile table cannot be encoded: \(error)")
        }
    }

    /// The start of a TLS 1.2-style ClientHello record: handshake, version, length,
    /// ClientHello, then the client random.
    private static var tlsClientHello: [UInt8] {
        [0x16, 0x03, 0x01, 0x00, 0xF4, 0x01, 0x00, 0x00, 0xF0, 0x03, 0x03] + randomBytes.prefix(32)
    }

    /// 64 bytes from a fixed seed; the first is neither of the bytes a header starts with.
    private static var randomBytes: [UInt8] {
        let bytes = Array(interopPayload(count: 64, seed: 0x5EED).bytes.prefix(64))
        precondition(bytes[0] != UInt8(ascii: "P") && bytes[0] != 0x0D, "pick another seed")
        return bytes
    }
}

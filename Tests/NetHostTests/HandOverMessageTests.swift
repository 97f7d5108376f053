import NetHostCore
import Testing

/// The takeover's messages: each one survives encoding, and bytes that are not a
/// message, or lack a field, are refused with a reason.
@Suite("Takeover messages")
struct HandOverMessageTests {
    static let listener = HandedListener(service: "proxy \"é\"\n", interface: "::1", port: 0, boundPort: 41234)

    @Test("every message decodes to itself", arguments: [
        HandOverMessage.request(version: 1, pid: 4242),
        .listener(listener),
        .end(count: 3),
        .refused(reason: "user 1000 may not"),
        .ready,
        .released,
    ])
    func roundTrip(_ message: HandOverMessage) throws {
        #expect(try HandOverMessage(decoding: message.encoded()) == message)
    }

    @Test("fields a newer NetHost adds are ignored")
    func unknownFieldsIgnored() throws {
        let bytes = Array(#"{"type":"end","count":2,"compression":"none"}"#.utf8)
        #expect(try HandOverMessage(decoding: bytes) == .end(count: 2))
    }

    @Test("not JSON, an unknown type, a missing field, too large: refused, saying why", arguments: [
        ("PROXY TCP4", "not a takeover message"),
        (#"{"type":"launch"}"#, "unknown message type 'launch'"),
        (#"{"type":"listener"}"#, "a 'listener' message without 'listener'"),
        (#"{"type":"request","version":1}"#, "a 'request' message without 'pid'"),
        (#"{"type":"ready","pad":""# + String(repeating: "x", count: 20_000) + #""}"#, "a message of"),
    ])
    func malformed(_ text: String, _ reason: String) {
        #expect {
            _ = try HandOverMessage(decoding: Array(text.utf8))
        } throws: { error in
            "\(error)".hasPrefix("malformed takeover message: ") && "\(error)".contains(reason)
        }
    }
}

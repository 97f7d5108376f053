import Testing
@testable import ProxyProtocol

/// The parser checks TLVs in place (`ProxyTLV.validate`) and decodes them only on
/// demand (`ProxyTLV.decode`): the two must accept and refuse exactly the same values.
@Suite("TLV validation in place agrees with decoding")
struct TLVValidationTests {
    private static func outcome(_ body: () throws(ProxyHeaderError.TLVProblem) -> Void) -> ProxyHeaderError.TLVProblem? {
        do throws(ProxyHeaderError.TLVProblem) {
            try body()
            return nil
        } catch {
            return error
        }
    }

    private static func agree(type: UInt8, value: [UInt8]) -> Bool {
        let validated = value.withUnsafeBytes { bytes in
            outcome { () throws(ProxyHeaderError.TLVProblem) in try ProxyTLV.validate(type: type, value: bytes) }
        }
        let decoded = outcome { () throws(ProxyHeaderError.TLVProblem) in _ = try ProxyTLV(type: type, value: value).decode() }
        return validated == decoded
    }

    @Test("hand-picked values at every rule's edge")
    func edges() {
        let ssl: (UInt8, [UInt8]) -> [UInt8] = { subtype, text in [0x07, 0, 0, 0, 0, subtype, 0, UInt8(text.count)] + text }
        let cases: [(UInt8, [UInt8])] = [
            (0x02, Array("example.com".utf8)), (0x02, [0xC3, 0x28]), (0x02, []), (0x30, [0xFF]),
            (0x03, [1, 2, 3, 4]), (0x03, [1, 2, 3]), (0x03, [1, 2, 3, 4, 5]),
            (0x05, [UInt8](repeating: 1, count: 128)), (0x05, [UInt8](repeating: 1, count: 129)),
            (0x20, [1, 0, 0, 0]), (0x20, [1, 0, 0, 0, 0]), (0x20, ssl(0x22, Array("cn".utf8))),
            (0x20, ssl(0x22, [0xE2, 0x82])), (0x20, ssl(0x30, [0xFF])), (0x20, [1, 0, 0, 0, 0, 0x21, 0]),
            (0x20, [1, 0, 0, 0, 0, 0x21, 0, 9, 1]), (0x01, [0xFF]), (0xE0, [0xFF]), (0x04, [9, 9]),
        ]
        for (type, value) in cases {
            #expect(Self.agree(type: type, value: value), "type \(type) value \(value)")
        }
    }

    @Test("random values of every type code")
    func random() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let type = UInt8.random(in: 0...0xFF, using: &generator)
            var value = (0..<Int.random(in: 0...40, using: &generator)).map { _ in UInt8.random(in: 0...0xFF, using: &generator) }
            if type == 0x20, value.count >= 8, Bool.random(using: &generator) {
                // A well-formed SSL prefix and one sub-TLV header, so the sub-TLV rules are reached.
                value[5] = UInt8.random(in: 0x21...0x26, using: &generator)
                value[6] = 0
                value[7] = UInt8(min(value.count - 8, Int.random(in: 0...6, using: &generator)))
            }
            #expect(Self.agree(type: type, value: value), "type \(type) value \(value)")
        }
    }
}

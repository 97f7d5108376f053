import ProxyProtocol
import Testing

// MARK: - Building bytes by hand (independent of ProxyHeaderEncoder)

let v2Signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]

func ascii(_ text: String) -> [UInt8] { Array(text.utf8) }

func be16(_ value: Int) -> [UInt8] { [UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)] }

func be32(_ value: UInt32) -> [UInt8] {
    [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
}

/// A v2 header: signature, version/command, family/transport, length, body.
/// `length` defaults to the body's size.
func v2Header(_ versionCommand: UInt8, _ family: UInt8, length: Int? = nil, _ body: [UInt8] = []) -> [UInt8] {
    v2Signature + [versionCommand, family] + be16(length ?? body.count) + body
}

/// One TLV: type, big-endian length, value. `length` overrides the real one.
func tlv(_ type: UInt8, _ value: [UInt8], length: Int? = nil) -> [UInt8] {
    [type] + be16(length ?? value.count) + value
}

/// A v2 header ending in a CRC32C TLV whose checksum is computed over the
/// whole header with the field zeroed (spec 2.2.3), optionally spoiled.
func v2HeaderWithChecksum(_ versionCommand: UInt8, _ family: UInt8, _ body: [UInt8], xor: UInt32 = 0) -> [UInt8] {
    var bytes = v2Header(versionCommand, family, body + tlv(0x03, [0, 0, 0, 0]))
    let checksum = CRC32C.checksum(bytes) ^ xor
    bytes.replaceSubrange(bytes.count - 4..<bytes.count, with: be32(checksum))
    return bytes
}

func inet4Block(_ source: [UInt8], _ destination: [UInt8], _ sourcePort: Int, _ destinationPort: Int) -> [UInt8] {
    source + destination + be16(sourcePort) + be16(destinationPort)
}

/// A 108-byte sun_path.
func sunPath(_ path: [UInt8]) -> [UInt8] { path + [UInt8](repeating: 0, count: 108 - path.count) }

func inet(_ source: String, _ sourcePort: UInt16, _ destination: String, _ destinationPort: UInt16)
    -> ProxyHeader.Addresses
{
    .inet(
        source: .init(IPv4Address(source)!, port: sourcePort),
        destination: .init(IPv4Address(destination)!, port: destinationPort))
}

func inet6(_ source: String, _ sourcePort: UInt16, _ destination: String, _ destinationPort: UInt16)
    -> ProxyHeader.Addresses
{
    .inet6(
        source: .init(IPv6Address(source)!, port: sourcePort),
        destination: .init(IPv6Address(destination)!, port: destinationPort))
}

// MARK: - Delivering bytes to the parser

/// How the bytes of a test input reach the parser. The parser is always
/// handed everything received so far, as a connection would accumulate it.
enum Delivery: Sendable, CustomTestStringConvertible {
    case whole
    case byteByByte
    case randomChunks(seed: UInt64)

    static let all: [Delivery] = [.whole, .byteByByte] + (1...6).map { .randomChunks(seed: $0) }

    var testDescription: String {
        switch self {
        case .whole: "whole"
        case .byteByByte: "byte by byte"
        case .randomChunks(let seed): "random chunks (seed \(seed))"
        }
    }

    /// The received-byte counts at which the parser is called.
    func cutPoints(_ count: Int) -> [Int] {
        switch self {
        case .whole:
            return [count]
        case .byteByByte:
            return Array(0...count)
        case .randomChunks(let seed):
            var rng = SplitMix64(seed: seed &+ UInt64(count))
            var points: [Int] = []
            var received = 0
            while received < count {
                received = min(count, received + Int.random(in: 1...9, using: &rng))
                points.append(received)
            }
            return points
        }
    }
}

/// What the parser made of an input.
enum Outcome: Equatable, CustomStringConvertible {
    case complete(ProxyHeader, consumed: Int)
    case needMoreData
    /// `received`: how many bytes the parser had been given when it threw.
    case failed(ProxyHeaderError.Reason, received: Int)

    var description: String {
        switch self {
        case .complete(let header, let consumed): "complete(\(header), consumed: \(consumed))"
        case .needMoreData: "needMoreData"
        case .failed(let reason, let received): "failed(\(reason), after \(received) bytes)"
        }
    }

    /// The same outcome without the byte count an error was noticed at.
    var ignoringWhen: Outcome {
        if case .failed(let reason, _) = self { return .failed(reason, received: -1) }
        return self
    }
}

func deliver(
    _ bytes: [UInt8], _ delivery: Delivery = .whole,
    maximumHeaderLength: Int = ProxyHeaderParser.defaultMaximumHeaderLength
) -> Outcome {
    var parser = ProxyHeaderParser(maximumHeaderLength: maximumHeaderLength)
    var last = ProxyHeaderParser.ParseResult.needMoreData
    for received in delivery.cutPoints(bytes.count) {
        do {
            last = try parser.parse(bytes[0..<received])
        } catch {
            return .failed(error.reason, received: received)
        }
        if case .complete(let header, let consumed) = last { return .complete(header, consumed: consumed) }
    }
    return .needMoreData
}

/// The error thrown for `bytes` given whole.
func error(for bytes: [UInt8], maximumHeaderLength: Int = ProxyHeaderParser.defaultMaximumHeaderLength)
    -> ProxyHeaderError?
{
    do {
        _ = try ProxyHeaderParser.parse(bytes, maximumHeaderLength: maximumHeaderLength)
        return nil
    } catch {
        return error
    }
}

// MARK: - Seeded randomness

/// SplitMix64: small, fast, and the same on every platform.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension ProxyHeader: CustomTestStringConvertible {
    public var testDescription: String {
        "\(version) \(command) \(family)/\(transport) \(sourceAddress ?? "-"):\(sourcePort.map(String.init) ?? "-")"
            + " -> \(destinationAddress ?? "-"):\(destinationPort.map(String.init) ?? "-") tlvs: \(tlvs.count)"
    }
}

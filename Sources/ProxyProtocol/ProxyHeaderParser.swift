/// An incremental PROXY protocol header parser (versions 1 and 2), free of
/// I/O so it runs the same in a channel handler, a test, a fuzzer and a
/// benchmark.
///
/// The caller accumulates what the connection delivers and hands the parser
/// *all* of it, from the header's first byte, on every call:
///
///     var parser = ProxyHeaderParser()
///     switch try parser.parse(buffer: receivedSoFar) {
///     case .needMoreData: break  // read more, call again with everything
///     case .complete(let header, let consumed): ...  // bytes after `consumed` are application data
///     }
///
/// The parser remembers how far it has examined and never examines a byte
/// twice. It answers `.needMoreData` only while the bytes can still begin a
/// valid header and throws a `ProxyHeaderError` at the first byte that rules
/// that out. It never consumes a byte past the header. The caller's buffer
/// never needs to exceed `maximumBufferedBytes`.
///
/// Version 2 details:
/// - The declared length is always honoured; the bytes after the address
///   block are TLVs (spec 2.2) and a malformed one fails with `.badTLV`.
/// - A CRC32C TLV is verified; a mismatch fails with `.crcMismatch`.
/// - LOCAL headers are accepted whatever their family byte and body, as the
///   spec demands: what can be read (addresses, TLVs) is kept, a body that
///   cannot be read is dropped (`addresses == .unspecified`, no TLVs); only a
///   CRC32C mismatch still fails.
public struct ProxyHeaderParser: Sendable {
    /// What a call found.
    public enum ParseResult: Sendable, Hashable {
        /// The bytes so far are a valid beginning; call again with more.
        case needMoreData
        /// A complete header occupying the first `consumed` bytes.
        case complete(ProxyHeader, consumed: Int)
    }

    /// A v1 line may not exceed 107 bytes including CRLF (spec 2.1).
    public static let v1MaximumLength = 107
    /// The largest v2 header the protocol can express: 16 + 65535.
    public static let v2ProtocolMaximumLength = 16 + 0xFFFF
    /// The default limit for v2 headers: room for UNIX addresses and a few
    /// kilobytes of TLVs, far below what a peer could otherwise make us buffer.
    public static let defaultMaximumHeaderLength = 4096

    private enum State: Sendable {
        case start
        case v1(V1Parser)
        case v2(V2Parser)
        case complete(ProxyHeader, consumed: Int)
        case failed(ProxyHeaderError)
    }

    /// The largest v2 header accepted (v1 is always bounded by 107 bytes).
    public let maximumHeaderLength: Int
    private var state = State.start

    /// - Parameter maximumHeaderLength: the largest v2 header to accept,
    ///   16...65551; a declared length beyond it fails with `.tooLong` as
    ///   soon as the length field arrives.
    public init(maximumHeaderLength: Int = ProxyHeaderParser.defaultMaximumHeaderLength) {
        precondition(maximumHeaderLength >= 16, "a PROXY v2 header is at least 16 bytes")
        self.maximumHeaderLength = min(maximumHeaderLength, Self.v2ProtocolMaximumLength)
    }

    /// The most bytes a caller ever has to buffer before the parser answers.
    public var maximumBufferedBytes: Int { max(Self.v1MaximumLength, maximumHeaderLength) }

    /// How many leading bytes have been examined so far (0 after a failure).
    /// A v2 body is examined in one go once it is complete.
    public var examinedByteCount: Int {
        switch state {
        case .start: 0
        case .v1(let parser): parser.offset
        case .v2(let parser): parser.offset
        case .complete(_, let consumed): consumed
        case .failed: 0
        }
    }

    /// Parses `buffer`, which holds every byte received so far from the
    /// header's start (the bytes of earlier calls unchanged, plus new ones).
    ///
    /// After `.complete` or an error, further calls repeat that answer.
    public mutating func parse(buffer: UnsafeRawBufferPointer) throws(ProxyHeaderError) -> ParseResult {
        switch state {
        case .complete(let header, let consumed):
            return .complete(header, consumed: consumed)
        case .failed(let error):
            throw error
        case .start:
            guard let first = buffer.first else { return .needMoreData }
            switch first {
            case UInt8(ascii: "P"): state = .v1(V1Parser())
            case V2Parser.signature[0]: state = .v2(V2Parser(maximumHeaderLength: maximumHeaderLength))
            default: return try fail(ProxyHeaderError(.badSignature(offset: 0)))
            }
            return try parse(buffer: buffer)
        case .v1(var parser):
            precondition(buffer.count >= parser.offset, "parse(buffer:) must be given every byte received so far")
            do {
                let result = try parser.parse(buffer)
                return settle(result, otherwise: .v1(parser))
            } catch {
                return try fail(error)
            }
        case .v2(var parser):
            precondition(buffer.count >= parser.offset, "parse(buffer:) must be given every byte received so far")
            do {
                let result = try parser.parse(buffer)
                return settle(result, otherwise: .v2(parser))
            } catch {
                return try fail(error)
            }
        }
    }

    /// Parses `bytes`, which hold every byte received so far; see `parse(buffer:)`.
    public mutating func parse(_ bytes: some Collection<UInt8>) throws(ProxyHeaderError) -> ParseResult {
        let contiguous = bytes.withContiguousStorageIfAvailable { elements in
            Result { () throws(ProxyHeaderError) in try self.parse(buffer: UnsafeRawBufferPointer(elements)) }
        }
        if let contiguous { return try contiguous.get() }
        let copy = Array(bytes)
        return try copy.withUnsafeBytes { buffer in
            Result { () throws(ProxyHeaderError) in try self.parse(buffer: buffer) }
        }.get()
    }

    /// Parses a header at the start of `bytes` in one go: the header and the
    /// number of bytes it occupies, or nil if `bytes` is a valid but
    /// incomplete beginning.
    public static func parse(
        _ bytes: [UInt8], maximumHeaderLength: Int = ProxyHeaderParser.defaultMaximumHeaderLength
    ) throws(ProxyHeaderError) -> (header: ProxyHeader, consumed: Int)? {
        var parser = ProxyHeaderParser(maximumHeaderLength: maximumHeaderLength)
        switch try parser.parse(bytes) {
        case .needMoreData: return nil
        case .complete(let header, let consumed): return (header, consumed)
        }
    }

    private mutating func settle(_ result: ParseResult, otherwise pending: State) -> ParseResult {
        switch result {
        case .needMoreData: state = pending
        case .complete(let header, let consumed): state = .complete(header, consumed: consumed)
        }
        return result
    }

    private mutating func fail(_ error: ProxyHeaderError) throws(ProxyHeaderError) -> ParseResult {
        state = .failed(error)
        throw error
    }
}

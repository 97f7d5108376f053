import NIOCore

/// NIO's adaptive receive-buffer sizing in four bytes of state.
///
/// NIO keeps each channel's receive allocator as an existential. NIO's own
/// `AdaptiveRecvByteBufferAllocator` holds 33 bytes, more than an existential's
/// 24-byte inline buffer, so every connection paid a separate 56-byte heap box for
/// it as long as it lived. The sizes here are powers of two, as in NIO's, so they
/// are kept as exponents; the policy is NIO's: after a read that fills the buffer
/// the next one is twice as large (up to `maximum`), after two reads in a row that
/// use at most half of it, half as large (down to `minimum`).
public struct CompactAdaptiveRecvAllocator: RecvByteBufferAllocator, Sendable {
    private let minimumExponent: UInt8
    private let maximumExponent: UInt8
    private var nextExponent: UInt8
    /// The last read used at most half of the buffer; one more such read shrinks it.
    private var decreaseNow = false

    /// Rounds as NIO does: `minimum` and `initial` down to a power of two, `maximum`
    /// up, each first capped at 2^30 (a larger `read_size` means 1 GiB).
    public init(minimum: Int, initial: Int, maximum: Int) {
        precondition(minimum >= 1 && minimum <= initial && initial <= maximum,
                     "receive sizes must satisfy 1 <= minimum <= initial <= maximum")
        minimumExponent = Self.exponent(roundingDown: min(minimum, Self.largest))
        nextExponent = Self.exponent(roundingDown: min(initial, Self.largest))
        maximumExponent = Self.exponent(roundingUp: min(maximum, Self.largest))
    }

    private static let largest = 1 << 30

    public var minimum: Int { 1 << Int(minimumExponent) }
    public var maximum: Int { 1 << Int(maximumExponent) }

    public func buffer(allocator: ByteBufferAllocator) -> ByteBuffer {
        allocator.buffer(capacity: 1 << Int(nextExponent))
    }

    public func nextBufferSize() -> Int? {
        1 << Int(nextExponent)
    }

    /// Adjusts the next size to this read; true if it grew (NIO may then read again at once).
    public mutating func record(actualReadBytes: Int) -> Bool {
        let size = 1 << Int(nextExponent)
        if nextExponent > minimumExponent, actualReadBytes <= size >> 1 {
            if decreaseNow {
                nextExponent -= 1
            }
            decreaseNow.toggle()
            return false
        }
        decreaseNow = false
        guard actualReadBytes >= size, nextExponent < maximumExponent else { return false }
        nextExponent += 1
        return true
    }

    private static func exponent(roundingDown value: Int) -> UInt8 {
        UInt8(Int.bitWidth - 1 - value.leadingZeroBitCount)
    }

    private static func exponent(roundingUp value: Int) -> UInt8 {
        let down = exponent(roundingDown: value)
        return value == 1 << Int(down) ? down : down + 1
    }
}

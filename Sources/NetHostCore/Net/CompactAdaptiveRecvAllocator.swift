import NIOCore

/// NIO's adaptive receive-buffer sizing in five bytes of state, and receive buffers
/// that go back once a burst is over.
///
/// NIO keeps each channel's receive allocator as an existential. NIO's own
/// `AdaptiveRecvByteBufferAllocator` holds 33 bytes, more than an existential's
/// 24-byte inline buffer, so every connection paid a separate 56-byte heap box for
/// it as long as it lived. The sizes here are powers of two, as in NIO's, so they
/// are kept as exponents; the policy is NIO's: after a read that fills the buffer
/// the next one is twice as large (up to `maximum`), after two reads in a row that
/// use at most half of it, half as large (down to `minimum`).
///
/// What a connection keeps between reads. A socket channel reads through its
/// `NIOPooledRecvBufferAllocator`, which keeps the first buffer it allocates and, told
/// the next size (`nextBufferSize()`), grows that buffer in place and keeps it at its
/// largest for the life of the connection: 64 KiB for every connection that once read
/// a burst. So this allocator tells the pool no size (nil), and `record` answers
/// whether the next read needs a larger buffer than the `initial` one the pool keeps:
/// then the pool reads into a new buffer of the adaptive size, which goes as soon as
/// the service has done with the bytes, and once reads are small again it reads into
/// the small kept buffer. With `ChannelOptions.maxMessagesPerRead` at 1 the pool
/// keeps only that one buffer (with more, it keeps one per read of a cycle, each at the
/// size it had): `forConnections` and `PortManager` set both.
public struct CompactAdaptiveRecvAllocator: RecvByteBufferAllocator, Sendable {
    private let minimumExponent: UInt8
    private let initialExponent: UInt8
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
        initialExponent = Self.exponent(roundingDown: min(initial, Self.largest))
        nextExponent = initialExponent
        maximumExponent = Self.exponent(roundingUp: min(maximum, Self.largest))
    }

    /// NetHost's receive buffers for connections that read at most `readSize` bytes at a
    /// time: 128 bytes kept between reads (a whole PROXY v1 header, or v2 without large
    /// TLVs), larger ones only while the traffic needs them.
    public static func forConnections(readSize: Int) -> CompactAdaptiveRecvAllocator {
        let kept = min(128, max(1, readSize))
        return CompactAdaptiveRecvAllocator(minimum: kept, initial: kept, maximum: max(kept, readSize))
    }

    private static let largest = 1 << 30

    public var minimum: Int { 1 << Int(minimumExponent) }
    public var initial: Int { 1 << Int(initialExponent) }
    public var maximum: Int { 1 << Int(maximumExponent) }
    /// The size the adaptive policy wants for the next read.
    public var nextSize: Int { 1 << Int(nextExponent) }

    public func buffer(allocator: ByteBufferAllocator) -> ByteBuffer {
        allocator.buffer(capacity: nextSize)
    }

    /// None: told a size, NIO's pool would grow the buffer it keeps to it (see above).
    public func nextBufferSize() -> Int? {
        nil
    }

    /// Adjusts the next size to this read. True while the next read needs a larger
    /// buffer than the `initial` one the pool keeps: the pool then allocates one of
    /// `nextSize` for it rather than reuse the kept one.
    public mutating func record(actualReadBytes: Int) -> Bool {
        adjust(actualReadBytes: actualReadBytes)
        return nextExponent > initialExponent
    }

    /// NIO's policy; true if the size grew.
    @discardableResult
    mutating func adjust(actualReadBytes: Int) -> Bool {
        let size = nextSize
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

import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging

/// How big each connection's next receive buffer is: NIO's adaptive policy,
/// stored small enough that NIO keeps it without a heap box.
@Suite("Receive buffer sizing")
struct ReceiveBufferSizingTests {
    @Test("fits the inline buffer of an existential, so a channel stores it without allocating")
    func fitsInline() {
        // An existential keeps values of up to three words inline; NIO's own
        // AdaptiveRecvByteBufferAllocator does not fit and is boxed on the heap.
        let inlineCapacity = 3 * MemoryLayout<Int>.size
        #expect(MemoryLayout<CompactAdaptiveRecvAllocator>.size <= inlineCapacity)
        #expect(MemoryLayout<AdaptiveRecvByteBufferAllocator>.size > inlineCapacity)
    }

    /// NetHost's own bounds, bounds that are not powers of two, and degenerate ones.
    static let bounds = [
        (minimum: 64, initial: 128, maximum: 65536),
        (minimum: 100, initial: 1000, maximum: 10000),
        (minimum: 1, initial: 1, maximum: 1),
        (minimum: 64, initial: 64, maximum: 64),
        (minimum: 64, initial: 128, maximum: Int.max),  // a read_size past 2^30 means 2^30
    ]

    @Test("rounds its bounds to powers of two as NIO does", arguments: bounds)
    func rounding(minimum: Int, initial: Int, maximum: Int) {
        let compact = CompactAdaptiveRecvAllocator(minimum: minimum, initial: initial, maximum: maximum)
        let nio = AdaptiveRecvByteBufferAllocator(minimum: minimum, initial: initial, maximum: maximum)
        #expect(compact.minimum == nio.minimum)
        #expect(compact.maximum == nio.maximum)
        #expect(compact.nextSize == nio.initial)
        #expect(compact.initial == nio.initial)
    }

    // NIO's allocator traps on a size of 1 (it requires even sizes): compared without that case.
    @Test("grows and shrinks read by read exactly as NIO's adaptive allocator", arguments: bounds.filter { $0.minimum > 1 })
    func matchesNIOPolicy(minimum: Int, initial: Int, maximum: Int) {
        var compact = CompactAdaptiveRecvAllocator(minimum: minimum, initial: initial, maximum: maximum)
        var nio = AdaptiveRecvByteBufferAllocator(minimum: minimum, initial: initial, maximum: maximum)
        // A fixed pseudo-random sequence (a 64-bit LCG), so a failure repeats on every run.
        var state = UInt64(truncatingIfNeeded: minimum &* 31 &+ maximum)
        func random() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state >> 33
        }
        for step in 0..<5_000 {
            let current = nio.nextBufferSize() ?? 0
            // Mostly reads that fill the buffer, half of it, or a little of it: the
            // shapes that move the size; sometimes anything.
            let read: Int
            switch random() % 4 {
            case 0: read = current
            case 1: read = current / 2
            case 2: read = Int(random() % 32)
            default: read = Int(random() % UInt64(2 * current + 1))
            }
            let compactGrew = compact.adjust(actualReadBytes: read)
            let nioGrew = nio.record(actualReadBytes: read)
            #expect(compactGrew == nioGrew, "step \(step): read \(read) of \(current)")
            #expect(compact.nextSize == nio.nextBufferSize(), "step \(step): read \(read) of \(current)")
            if compact.nextSize != nio.nextBufferSize() { return }
        }
    }

    @Test("a 16 KiB message stream grows the buffer to hold a whole message, a quiet connection shrinks it")
    func growsThenShrinks() {
        var sizing = CompactAdaptiveRecvAllocator(minimum: 64, initial: 128, maximum: 65536)
        var sizes: Set<Int> = []
        for _ in 0..<20 {
            _ = sizing.record(actualReadBytes: min(16384, sizing.nextSize))
            sizes.insert(sizing.nextSize)
        }
        // As NIO's: it doubles up to 32 KiB, then settles between 16 and 32 KiB
        // (two reads of half the buffer shrink it, a full one grows it again).
        #expect(sizes.max() == 32768)
        #expect([16384, 32768].contains(sizing.nextSize))
        for _ in 0..<20 {
            _ = sizing.record(actualReadBytes: 1)
        }
        #expect(sizing.nextSize == 64)
    }

    @Test("accepted connections size their reads with it, starting at 128 bytes and bounded by read_size")
    func acceptedConnectionsUseIt() async throws {
        let sizing = try await Self.acceptedSizing(readSize: 4096).allocator
        #expect(sizing.nextSize == 128)
        #expect(sizing.maximum == 4096)
    }

    /// The receive allocator and reads per wake-up a port gives the connections it accepts.
    static func acceptedSizing(readSize: Int?) async throws -> (allocator: CompactAdaptiveRecvAllocator, readsPerWakeUp: UInt) {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var settings = NetworkSettings()
        if let readSize { settings.readSize = readSize }
        let seen = NIOLockedValueBox<[(CompactAdaptiveRecvAllocator, UInt)]>([])
        let ports = PortManager(group: group, logger: .init(label: "test"))
        let errors = await ports.open([ListenRequest(
            serviceName: "probe", interface: "127.0.0.1", port: 0, loops: Array(group.makeIterator()), settings: settings,
            initializeChild: { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let sizing = try channel.syncOptions?.getOption(.recvAllocator) as? CompactAdaptiveRecvAllocator,
                       let reads = try channel.syncOptions?.getOption(.maxMessagesPerRead) {
                        seen.withLockedValue { $0.append((sizing, reads)) }
                    }
                    channel.close(promise: nil)
                }
            }
        )])
        #expect(errors.isEmpty)
        let address = try #require(ports.boundAddresses(of: "probe").first)
        let client = try await ClientBootstrap(group: group).connect(to: address).get()
        try await client.closeFuture.get()
        let sizing = try #require(seen.withLockedValue { $0.first })
        try await ports.close().get()
        try await group.shutdownGracefully()
        return sizing
    }

    @Test("after a burst, the buffer a connection keeps between reads is small again, and reads that need more get it")
    func keptBufferShrinksAfterABurst() async throws {
        // The accepted channel's settings, read through NIO's own pool as a socket
        // channel reads (SocketChannel.readFromSocket): a buffer from the pool, a read
        // of up to its capacity, `record`; the service drops each buffer once done.
        let (allocator, readsPerWakeUp) = try await Self.acceptedSizing(readSize: nil)
        var pool = NIOPooledRecvBufferAllocator(capacity: Int(readsPerWakeUp), recvAllocator: allocator)
        func read(_ available: Int) -> (read: Int, storage: Int) {
            let (buffer, read) = pool.buffer(allocator: ByteBufferAllocator()) { buffer -> Int in
                let read = min(available, buffer.writableBytes)
                buffer.writeRepeatingByte(0, count: read)
                return read
            }
            pool.record(actualReadBytes: read)
            return (read, buffer.storageCapacity)
        }
        var burst: [Int] = []
        var left = 256 * 1024
        while left > 0 {
            let (count, _) = read(left)
            burst.append(count)
            left -= count
        }
        #expect(burst.max() == 65536, "a 256 KiB burst never read 64 KiB at a time: \(burst)")
        var quiet: [Int] = []
        for _ in 0..<40 {
            quiet.append(read(10).storage)
        }
        #expect(quiet.last == 128, "after the burst, small reads still go into \(quiet.last ?? 0)-byte buffers: \(quiet)")
        // Kept between reads: what the pool hands out for the next read once reads are small.
        #expect(read(10).storage == 128)
        let (fullRead, _) = read(100_000)
        #expect(fullRead == 128)
        #expect(read(100_000).read == 256, "a read that filled the kept buffer did not get a larger one next")
    }
}

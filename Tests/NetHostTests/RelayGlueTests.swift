import NIOCore
import NIOEmbedded
import Testing
@testable import NetHostCore

/// The glue that joins a relayed TLS connection to its socket pair, on
/// `EmbeddedChannel`s sharing one `EmbeddedEventLoop`, in virtual time.
@Suite("Relay glue")
struct RelayGlueTests {
    /// Sees what the glue asks of its channel: writes (their promises held while
    /// `stalled`, as for a peer that does not read), reads and closes.
    final class Probe: ChannelOutboundHandler {
        typealias OutboundIn = ByteBuffer
        var stalled = false
        var held: [EventLoopPromise<Void>] = []
        var reads = 0
        var closeModes: [CloseMode] = []

        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            if stalled {
                if let promise { held.append(promise) }
                context.write(data, promise: nil)
            } else {
                context.write(data, promise: promise)
            }
        }

        func read(context: ChannelHandlerContext) {
            reads += 1
            context.read()
        }

        func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
            closeModes.append(mode)
            if mode == .output {
                promise?.succeed()
                return
            }
            context.close(mode: mode, promise: promise)
        }

        func release() {
            let held = self.held
            self.held = []
            for promise in held { promise.succeed() }
        }
    }

    final class Pair {
        let loop = EmbeddedEventLoop()
        let a: EmbeddedChannel
        let b: EmbeddedChannel
        let glueA = RelayGlueHandler(closeGrace: .seconds(5))
        let glueB = RelayGlueHandler(closeGrace: .seconds(5))
        let probeA = Probe()
        let probeB = Probe()

        init() throws {
            a = EmbeddedChannel(loop: loop)
            b = EmbeddedChannel(loop: loop)
            try a.pipeline.syncOperations.addHandler(probeA)
            try a.pipeline.syncOperations.addHandler(glueA)
            try b.pipeline.syncOperations.addHandler(probeB)
            try b.pipeline.syncOperations.addHandler(glueB)
            try a.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
            try b.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 2)).wait()
        }

        func join() { RelayGlueHandler.join(glueA, glueB) }

        func outbound(_ channel: EmbeddedChannel) throws -> String {
            var text = ""
            while let buffer = try channel.readOutbound(as: ByteBuffer.self) {
                text += String(buffer: buffer)
            }
            return text
        }

        deinit {
            _ = try? a.finish(acceptAlreadyClosed: true)
            _ = try? b.finish(acceptAlreadyClosed: true)
        }
    }

    @Test("bytes go both ways in order; what one end read before the other was joined is handed over at the join")
    func forwardsBothWays() throws {
        let pair = try Pair()
        try pair.a.writeInbound(ByteBuffer(string: "early "))
        #expect(try pair.outbound(pair.b) == "")
        pair.join()
        try pair.a.writeInbound(ByteBuffer(string: "late"))
        try pair.b.writeInbound(ByteBuffer(string: "reply"))
        #expect(try pair.outbound(pair.b) == "early late")
        #expect(try pair.outbound(pair.a) == "reply")
    }

    @Test("an end that cannot write more stops the other reading; writable again, the other reads")
    func backpressure() throws {
        let pair = try Pair()
        pair.join()
        let readsBefore = pair.probeA.reads
        pair.b.isWritable = false
        pair.b.pipeline.fireChannelWritabilityChanged()
        #expect(pair.probeA.reads == readsBefore)
        pair.b.isWritable = true
        pair.b.pipeline.fireChannelWritabilityChanged()
        #expect(pair.probeA.reads == readsBefore + 1)
    }

    @Test("a half-close is passed on after the bytes before it, as a close of the other end's output")
    func halfClose() throws {
        let pair = try Pair()
        pair.join()
        try pair.a.writeInbound(ByteBuffer(string: "last"))
        pair.a.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        #expect(try pair.outbound(pair.b) == "last")
        #expect(pair.probeB.closeModes == [.output])
        #expect(pair.b.isActive)
    }

    @Test("a half-close before the join is passed on at the join, after the bytes held")
    func halfCloseBeforeJoin() throws {
        let pair = try Pair()
        try pair.a.writeInbound(ByteBuffer(string: "held"))
        pair.a.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        #expect(pair.probeB.closeModes.isEmpty)
        pair.join()
        #expect(try pair.outbound(pair.b) == "held")
        #expect(pair.probeB.closeModes == [.output])
    }

    @Test("when one end closes, the other closes once what it was given is written")
    func closeAfterFlush() throws {
        let pair = try Pair()
        pair.join()
        pair.probeB.stalled = true
        try pair.a.writeInbound(ByteBuffer(string: "final bytes"))
        pair.a.close(promise: nil)
        pair.loop.run()
        #expect(pair.b.isActive, "closed before its last bytes were out")
        #expect(try pair.outbound(pair.b) == "final bytes")
        pair.probeB.release()
        pair.loop.run()
        #expect(!pair.b.isActive)
        #expect(pair.probeB.closeModes == [.all])
    }

    @Test("a peer that does not take the last bytes is cut off at the grace (send_timeout), not before")
    func closeGrace() throws {
        let pair = try Pair()
        pair.join()
        pair.probeB.stalled = true
        try pair.a.writeInbound(ByteBuffer(string: "never read"))
        pair.a.close(promise: nil)
        pair.loop.advanceTime(by: .milliseconds(4999))
        #expect(pair.b.isActive)
        // Timers on the loop's wheel fire within one tick after their deadline.
        pair.loop.advanceTime(by: .milliseconds(1) + LoopTimers.tick)
        #expect(!pair.b.isActive)
    }

    @Test("an end that closes before the join makes the other close at the join, after the bytes it held")
    func closeBeforeJoin() throws {
        let pair = try Pair()
        try pair.a.writeInbound(ByteBuffer(string: "held"))
        pair.a.close(promise: nil)
        pair.loop.run()
        #expect(pair.b.isActive)
        pair.join()
        pair.loop.run()
        #expect(try pair.outbound(pair.b) == "held")
        #expect(!pair.b.isActive)
    }
}

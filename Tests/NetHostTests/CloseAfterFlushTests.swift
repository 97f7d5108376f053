import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging

/// `close()` with data still queued: the FIN follows the last byte, with no reason,
/// and `send_timeout` bounds a peer that never reads. Virtual time, on an `EmbeddedChannel`.
@Suite("Close after flush")
struct CloseAfterFlushTests {
    /// Stands for a socket that takes nothing until `release()`: it holds every flush, so
    /// writes stay queued in the channel (counted by `bufferedWritableBytes`) while the
    /// channel stays writable, as a backlog below the high watermark does.
    final class FlushGate: ChannelOutboundHandler {
        typealias OutboundIn = ByteBuffer
        private var context: ChannelHandlerContext?
        private var held = false
        /// The promises of the writes held back. Closing fails them, as a socket
        /// channel fails the writes it never sent; an EmbeddedChannel leaves them
        /// pending, and a pending promise keeps its callbacks and what they hold.
        private var heldWrites: [EventLoopPromise<Void>] = []

        func handlerAdded(context: ChannelHandlerContext) { self.context = context }

        /// The context holds the handler: keeping it past removal would keep both.
        func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            if let promise { heldWrites.append(promise) }
            context.write(data, promise: promise)
        }

        func flush(context: ChannelHandlerContext) { held = true }

        func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
            let unsent = heldWrites
            heldWrites = []
            for write in unsent { write.fail(ChannelError.ioOnClosedChannel) }
            context.close(mode: mode, promise: promise)
        }

        func release() {
            guard held, let context else { return }
            held = false
            heldWrites = []  // the channel completes them as it sends them
            context.flush()
        }
    }

    /// Writes `goodbye` and closes when told "bye"; records the disconnects.
    final class Closer: ConnectionListener {
        let disconnects = NIOLockedValueBox<[String?]>([])

        func onIncoming(_ connection: Connection, data: ByteBuffer) throws {
            connection.write(ByteBuffer(repeating: UInt8(ascii: "g"), count: 1000))
            connection.close()
        }

        func onDisconnect(_ connection: Connection, reason: String?) {
            disconnects.withLockedValue { $0.append(reason) }
        }
    }

    /// Closes the channel and drops what is still scheduled on the loop when it
    /// goes: an open channel and its pipeline keep each other, and a pending timer
    /// tick and the loop do too.
    final class Setup {
        let loop: EmbeddedEventLoop
        let channel: EmbeddedChannel
        let gate: FlushGate
        let listener: Closer

        init(loop: EmbeddedEventLoop, channel: EmbeddedChannel, gate: FlushGate, listener: Closer) {
            self.loop = loop
            self.channel = channel
            self.gate = gate
            self.listener = listener
        }

        deinit {
            _ = try? channel.finish(acceptAlreadyClosed: true)
        }

        /// Everything the connection sent, concatenated.
        func sent() throws -> [UInt8] {
            var bytes: [UInt8] = []
            while let buffer = try channel.readOutbound(as: ByteBuffer.self) {
                bytes += buffer.readableBytesView
            }
            return bytes
        }
    }

    private func setUp(sendTimeout: Double = 4) throws -> Setup {
        let loop = EmbeddedEventLoop()
        let channel = EmbeddedChannel(loop: loop)
        let gate = FlushGate()
        let listener = Closer()
        var settings = NetworkSettings()
        settings.sendTimeout = sendTimeout
        try channel.pipeline.syncOperations.addHandlers([
            gate,
            ConnectionHandler(serviceName: "closer", listener: listener, settings: settings, logger: Logger(label: "test")),
        ])
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).wait()
        try channel.writeInbound(ByteBuffer(string: "bye"))
        return Setup(loop: loop, channel: channel, gate: gate, listener: listener)
    }

    @Test("the FIN follows as soon as the queued bytes are out, with no reason, well before send_timeout")
    func closesOnceFlushed() throws {
        let setup = try setUp()
        #expect(try setup.channel.getOption(ChannelOptions.bufferedWritableBytes).wait() == 1000)
        setup.loop.advanceTime(by: .seconds(1))
        #expect(setup.channel.isActive, "closed before the queued bytes were sent")
        #expect(try setup.sent().isEmpty)

        setup.gate.release()  // the socket takes everything
        setup.loop.run()
        #expect(!setup.channel.isActive, "still open once everything was sent")
        #expect(try setup.sent() == [UInt8](repeating: UInt8(ascii: "g"), count: 1000))
        #expect(setup.listener.disconnects.withLockedValue { $0 } == [nil])

        setup.loop.advanceTime(by: .seconds(10))  // past send_timeout: nothing more happens
        #expect(setup.listener.disconnects.withLockedValue { $0 } == [nil])
    }

    @Test("a peer that never reads is cut off at send_timeout, with reason \"send timeout\"")
    func sendTimeoutStillBounds() throws {
        let setup = try setUp(sendTimeout: 4)
        setup.loop.advanceTime(by: .milliseconds(3900))
        #expect(setup.channel.isActive, "closed before send_timeout")
        #expect(setup.listener.disconnects.withLockedValue { $0 }.isEmpty)

        setup.loop.advanceTime(by: .milliseconds(100))
        #expect(!setup.channel.isActive, "still open at send_timeout")
        #expect(setup.listener.disconnects.withLockedValue { $0 } == ["send timeout"])
        #expect(try setup.sent().isEmpty)
        setup.loop.advanceTime(by: .seconds(10))
        #expect(setup.listener.disconnects.withLockedValue { $0 }.count == 1)
    }

    /// A socket that takes every write at once while `passing`, and nothing after.
    final class Valve: ChannelOutboundHandler {
        typealias OutboundIn = ByteBuffer
        var passing = true
        private var context: ChannelHandlerContext?
        func handlerAdded(context: ChannelHandlerContext) { self.context = context }
        func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }
        func flush(context: ChannelHandlerContext) {
            if passing { context.flush() }
        }
        func open() {
            passing = true
            context?.flush()
        }
    }

    /// Answers "w" with ten bytes; "bye" with a thousand, then closes.
    final class Talker: ConnectionListener {
        func onIncoming(_ connection: Connection, data: ByteBuffer) throws {
            if data.readableBytesView.elementsEqual("bye".utf8) {
                connection.write(ByteBuffer(repeating: UInt8(ascii: "g"), count: 1000))
                connection.close()
            } else {
                connection.write(ByteBuffer(repeating: UInt8(ascii: "w"), count: 10))
            }
        }
        func onDisconnect(_ connection: Connection, reason: String?) {}
    }

    @Test("once the peer has kept up, writes are not all checked; one still queued at close() is sent before the FIN")
    func closeWaitsForAnUncheckedWrite() throws {
        let loop = EmbeddedEventLoop()
        let channel = EmbeddedChannel(loop: loop)
        defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
        let valve = Valve()
        try channel.pipeline.syncOperations.addHandlers([
            valve, ConnectionHandler(serviceName: "talker", listener: Talker(), settings: NetworkSettings(), logger: Logger(label: "test")),
        ])
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).wait()
        // Enough answers taken at once for the connection to stop asking after each write.
        for _ in 0 ..< Int(Connection.directWritesPerCheck) {
            try channel.writeInbound(ByteBuffer(string: "w"))
        }
        var sent = 0
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { sent += buffer.readableBytes }
        #expect(sent == 10 * Int(Connection.directWritesPerCheck))

        valve.passing = false  // the socket is full from now on
        try channel.writeInbound(ByteBuffer(string: "bye"))
        loop.run()
        #expect(channel.isActive, "closed with 1000 bytes still queued")
        valve.open()
        loop.run()
        var last: [UInt8] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { last += buffer.readableBytesView }
        #expect(last.count == 1000 && last.allSatisfy { $0 == UInt8(ascii: "g") }, "sent \(last.count) bytes, not the 1000 g's")
        #expect(!channel.isActive, "still open once everything was sent")
    }
}

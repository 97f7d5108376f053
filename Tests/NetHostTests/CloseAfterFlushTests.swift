import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import Testing
@testable import NetHost

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

        func handlerAdded(context: ChannelHandlerContext) { self.context = context }

        func flush(context: ChannelHandlerContext) { held = true }

        func release() {
            guard held, let context else { return }
            held = false
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

    struct Setup {
        let loop: EmbeddedEventLoop
        let channel: EmbeddedChannel
        let gate: FlushGate
        let listener: Closer

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
}

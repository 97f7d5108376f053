import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NIOTLS
import NetHostTestSupport
import Testing
@testable import NetHostConfig
@testable import NetHostCore

/// Issue 14: what a service writes while its STARTTLS handshake runs waits in the
/// connection, counted against `max_send_buffer_size` and `max_send_buffer_total` as
/// any waiting write (it used to wait in the TLS stage's own buffer, which nothing
/// bounded), and goes out encrypted and in order once the handshake is done. Virtual
/// time, on the `EmbeddedChannel`s of `TLSHandshakeLimitTests.Bench`, each connection
/// with this test's own `SendBufferBudget`.
@Suite("STARTTLS: writes during the handshake count toward the send limits")
struct StartTLSSendBufferTests {
    typealias Bench = TLSHandshakeLimitTests.Bench

    /// A STARTTLS service: "STARTTLS" upgrades the connection, which it keeps for the
    /// test to write to; when the handshake completes it writes `afterHandshake`.
    final class Upgrader: ConnectionListener {
        let connection: NIOLoopBoundBox<Connection?>
        let disconnects = NIOLockedValueBox<[String?]>([])
        let afterHandshake: String?

        init(loop: any EventLoop, afterHandshake: String? = nil) {
            connection = NIOLoopBoundBox(nil, eventLoop: loop)
            self.afterHandshake = afterHandshake
        }

        func onConnect(_ connection: Connection) throws {
            self.connection.value = connection
        }

        func onIncoming(_ connection: Connection, data: ByteBuffer) throws {
            if String(buffer: data) == "STARTTLS" { try connection.startTLS() }
        }

        func onStatus(_ connection: Connection, status: String) throws {
            if status == "ssl-handshake-complete", let afterHandshake { connection.write(afterHandshake) }
        }

        func onDisconnect(_ connection: Connection, reason: String?) {
            disconnects.withLockedValue { $0.append(reason) }
            // Not kept past its end: the connection holds this listener (a cycle otherwise).
            if self.connection.value === connection { self.connection.value = nil }
        }
    }

    static func settings(_ budget: SendBufferBudget, _ change: (inout NetworkSettings) -> Void = { _ in }) -> NetworkSettings {
        var settings = NetworkSettings()
        settings.sendBufferBudget = budget
        change(&settings)
        return settings
    }

    /// What the server sent after the STARTTLS command (nothing, until the client's hello).
    static func plaintextSent(_ channel: EmbeddedChannel) throws -> Int {
        var bytes = 0
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { bytes += buffer.readableBytes }
        return bytes
    }

    @Test("during a handshake that never completes, writes are counted; past max_send_buffer_size the connection is closed as over-limit")
    func heldWritesCountTowardTheLimit() throws {
        let bench = try Bench(["ssl_handshake_timeout": .integer(5)])
        let budget = SendBufferBudget()
        let service = Upgrader(loop: bench.loop)
        let channel = try bench.startTLS(listener: service, settings: Self.settings(budget) { $0.maxSendBufferSize = 16 * 1024 })
        #expect(bench.hasTLSStage(channel))
        let connection = try #require(service.connection.value)

        #expect(connection.write(SendBufferTests.chunk(8)))
        let held = connection.queuedSendStorage
        #expect(held >= 8 * 1024, "8 KiB written during the handshake, \(held) bytes counted")
        #expect(budget.used == held, "the budget does not reflect the bytes held during the handshake")
        #expect(try Self.plaintextSent(channel) == 0, "bytes went out before the handshake")
        #expect(channel.isActive)

        #expect(!connection.write(SendBufferTests.chunk(9)), "17 KiB held under a 16 KiB max_send_buffer_size")
        #expect(bench.isClosed(channel))
        #expect(service.disconnects.withLockedValue { $0 } == ["send buffer full"])
        #expect(bench.logs.contains("send buffer full, closing the connection"))
        #expect(budget.used == 0, "the budget kept the held bytes of a closed connection")
    }

    @Test("during a handshake, writes past max_send_buffer_total close the connection, counted as shed")
    func heldWritesCountTowardTheTotal() throws {
        let bench = try Bench(["ssl_handshake_timeout": .integer(5)])
        let budget = SendBufferBudget()
        let service = Upgrader(loop: bench.loop)
        let channel = try bench.startTLS(listener: service, settings: Self.settings(budget) { $0.maxSendBufferTotal = 16 * 1024 })
        let connection = try #require(service.connection.value)
        #expect(connection.write(SendBufferTests.chunk(8)))
        #expect(!connection.write(SendBufferTests.chunk(9)))
        #expect(bench.isClosed(channel))
        #expect(service.disconnects.withLockedValue { $0 } == ["send buffers over max_send_buffer_total"])
        #expect(budget.shedConnections == 1)
        #expect(budget.used == 0)
    }

    @Test("held writes of a handshake that times out are dropped and uncounted")
    func timeoutReleasesTheHeldBytes() throws {
        let bench = try Bench(["ssl_handshake_timeout": .integer(5)])
        let budget = SendBufferBudget()
        let service = Upgrader(loop: bench.loop)
        let channel = try bench.startTLS(listener: service, settings: Self.settings(budget))
        let connection = try #require(service.connection.value)
        connection.write("during the handshake")
        #expect(budget.used > 0)
        bench.advance(by: .seconds(5))
        #expect(bench.isClosed(channel))
        #expect(service.disconnects.withLockedValue { $0 } == [TLSHandshakeLimitTests.timedOut])
        #expect(budget.used == 0)
    }

    @Test("after the handshake the held bytes go out encrypted, in order, before what the service writes on completion; the budget returns to 0")
    func heldWritesGoOutAfterTheHandshake() throws {
        let bench = try Bench(["ssl_handshake_timeout": .integer(5)])
        let budget = SendBufferBudget()
        let service = Upgrader(loop: bench.loop, afterHandshake: "<status>")
        let channel = try bench.startTLS(listener: service, settings: Self.settings(budget))
        let connection = try #require(service.connection.value)

        // Small writes (copied together), a large one (kept as it is), a string.
        var expected: [UInt8] = []
        for index in 0..<100 {
            let line = "line \(index)\n"
            connection.write(ByteBuffer(string: line))
            expected += Array(line.utf8)
        }
        let large = ByteBuffer(bytes: (0..<20_000).map { UInt8(truncatingIfNeeded: $0 % 251) })
        connection.write(large)
        expected += Array(large.readableBytesView)
        connection.write("last\n")
        expected += Array("last\n".utf8)
        expected += Array("<status>".utf8)
        #expect(budget.used == connection.queuedSendStorage && budget.used > 20_000)

        let client = try bench.completeHandshake(with: channel)
        var received: [UInt8] = []
        while let buffer = try client.readInbound(as: ByteBuffer.self) { received += buffer.readableBytesView }
        #expect(received == expected, "\(received.count) bytes received of \(expected.count)")
        #expect(connection.queuedSendStorage == 0)
        #expect(budget.used == 0)
        #expect(channel.isActive)
    }

    /// Stalls `socket` when the handshake completes, before the connection hears of it,
    /// so that what was held meets a peer that reads nothing.
    final class StallOnHandshake: ChannelInboundHandler {
        typealias InboundIn = NIOAny
        let socket: SendBufferTests.StalledSocket
        init(_ socket: SendBufferTests.StalledSocket) { self.socket = socket }
        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if case TLSUserEvent.handshakeCompleted = event { socket.stall() }
            context.fireUserInboundEventTriggered(event)
        }
    }

    @Test("backpressure after a handshake: a connection that held more than its high-water mark reads during the handshake, stops after it until it drains")
    func heldWritesPauseReadingAfterTheHandshake() throws {
        let bench = try Bench(["ssl_handshake_timeout": .integer(5)])
        let budget = SendBufferBudget()
        let service = Upgrader(loop: bench.loop)
        let channel = try bench.startTLS(listener: service, settings: Self.settings(budget))
        let connection = try #require(service.connection.value)
        let socket = SendBufferTests.StalledSocket(open: true)
        try channel.pipeline.syncOperations.addHandler(socket, position: .first)
        try channel.pipeline.syncOperations.addHandler(
            StallOnHandshake(socket), position: .before(try channel.pipeline.syncOperations.handler(type: ConnectionHandler.self))
        )
        for _ in 0..<5 {
            connection.write(SendBufferTests.chunk(16))
        }
        #expect(SendBufferTests.reads(channel), "reading stopped during the handshake, which needs it")

        let client = try bench.completeHandshake(with: channel)
        #expect(!SendBufferTests.reads(channel), "still reading with 80 KiB waiting for a peer that reads nothing")
        #expect(budget.used > 0)

        socket.open()
        var received = 0
        var moved = true
        while moved {
            moved = false
            bench.loop.run()
            while let bytes = try channel.readOutbound(as: ByteBuffer.self) {
                try client.writeInbound(bytes)
                moved = true
            }
        }
        while let buffer = try client.readInbound(as: ByteBuffer.self) { received += buffer.readableBytes }
        #expect(received == 80 * 1024)
        #expect(SendBufferTests.reads(channel), "not reading again once everything was sent")
        #expect(budget.used == 0)
    }

    @Test("backpressure during a handshake: a relay writing past the mark stops the writer's reads, not the handshake's; both read again once it is out")
    func relayIntoAHandshakeStopsTheWriter() throws {
        let bench = try Bench(["ssl_handshake_timeout": .integer(5)])
        let budget = SendBufferBudget()
        let upgrader = Upgrader(loop: bench.loop)
        let upgrading = try bench.startTLS(listener: upgrader, settings: Self.settings(budget))
        let target = try #require(upgrader.connection.value)

        let relay = SendBufferTests.Service(loop: bench.loop)
        relay.target.value = target
        let input = EmbeddedChannel(loop: bench.loop)
        try input.pipeline.syncOperations.addHandler(ConnectionHandler(
            serviceName: "relay", listener: relay, settings: Self.settings(budget),
            logger: Logger(label: "relay", factory: bench.logs.handler(label:))
        ))
        try input.connect(to: SocketAddress(ipAddress: "198.51.100.9", port: 40002)).wait()
        defer { _ = try? input.finish(acceptAlreadyClosed: true) }

        for _ in 0..<5 {
            try input.writeInbound(SendBufferTests.chunk(16))
        }
        #expect(target.queuedSendStorage >= 80 * 1024)
        #expect(!SendBufferTests.reads(input), "the writer kept reading while the connection it relays to held 80 KiB")
        #expect(SendBufferTests.reads(upgrading), "reading stopped during the handshake, which needs it")

        let client = try bench.completeHandshake(with: upgrading)
        var received = 0
        while let buffer = try client.readInbound(as: ByteBuffer.self) { received += buffer.readableBytes }
        #expect(received == 80 * 1024)
        #expect(SendBufferTests.reads(input), "the writer did not read again once the target drained")
        #expect(SendBufferTests.reads(upgrading))
        #expect(budget.used == 0)
        relay.target.value = nil
    }
}

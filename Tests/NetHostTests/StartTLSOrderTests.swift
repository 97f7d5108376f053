import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NIOSSL
import NetHostTestSupport
import Testing
@testable import NetHostConfig
@testable import NetHostCore

/// STARTTLS keeps the order of what a service writes: what it wrote before
/// `startTLS` reaches the client in plain text (SMTP's "220 go ahead", XMPP's
/// `<proceed/>`), even while it still waits in the connection for a slow peer, and
/// the TLS stage goes in only once it is all on the socket, so the handshake follows
/// it; what it writes after goes out encrypted once the handshake is done. Virtual
/// time, on `EmbeddedChannel`s whose socket takes nothing until the test opens it
/// (`SendBufferTests.StalledSocket`), with a NIOSSL client on the other end.
@Suite("STARTTLS: what was written before goes out first, in plain text")
struct StartTLSOrderTests {
    typealias Bench = TLSHandshakeLimitTests.Bench
    typealias StalledSocket = SendBufferTests.StalledSocket

    static let ehloReply = "250-nethost\r\n250 STARTTLS\r\n"
    static let goAhead = "220 go ahead\r\n"
    static let afterStartTLS = "written after starttls\r\n"

    /// Just enough of SMTP: "EHLO" is answered, "STARTTLS" gets the go-ahead, then the
    /// upgrade, then a line written at once (which must wait for the handshake).
    final class SMTP: ConnectionListener {
        let connection: NIOLoopBoundBox<Connection?>
        let disconnects = NIOLockedValueBox<[String?]>([])

        init(loop: any EventLoop) {
            connection = NIOLoopBoundBox(nil, eventLoop: loop)
        }

        func onConnect(_ connection: Connection) throws {
            self.connection.value = connection
        }

        func onIncoming(_ connection: Connection, data: ByteBuffer) throws {
            switch String(buffer: data) {
            case "EHLO":
                connection.write(StartTLSOrderTests.ehloReply)
            case "STARTTLS":
                connection.write(StartTLSOrderTests.goAhead)
                try connection.startTLS()
                connection.write(StartTLSOrderTests.afterStartTLS)
            default:
                break
            }
        }

        func onStatus(_ connection: Connection, status: String) throws {
            if status == "ssl-handshake-complete" { connection.write("<status>") }
        }

        func onDisconnect(_ connection: Connection, reason: String?) {
            disconnects.withLockedValue { $0.append(reason) }
            // Not kept past its end: the connection holds this listener (a cycle otherwise).
            if self.connection.value === connection { self.connection.value = nil }
        }
    }

    /// A plain STARTTLS-capable connection behind a stalled socket, with its own budget.
    static func connect(
        _ bench: Bench, _ service: SMTP, _ budget: SendBufferBudget, _ change: (inout NetworkSettings) -> Void = { _ in }
    ) throws -> (EmbeddedChannel, StalledSocket) {
        let channel = EmbeddedChannel(loop: bench.loop)
        bench.track(channel)
        let socket = StalledSocket()
        var settings = NetworkSettings()
        settings.sendBufferBudget = budget
        change(&settings)
        try channel.pipeline.syncOperations.addHandlers([
            socket,
            ConnectionHandler(serviceName: "smtp", listener: service, settings: settings,
                              logger: Logger(label: "tls", factory: bench.logs.handler(label:)), tls: bench.tls.shared),
        ])
        try channel.connect(to: SocketAddress(ipAddress: "198.51.100.20", port: 40025)).wait()
        return (channel, socket)
    }

    /// Everything `from` sent so far, moved into `to` as received bytes.
    static func move(_ from: EmbeddedChannel, to: EmbeddedChannel) throws -> Bool {
        var moved = false
        while let bytes = try from.readOutbound(as: ByteBuffer.self) {
            guard bytes.readableBytes > 0 else { continue }
            try to.writeInbound(bytes)
            moved = true
        }
        return moved
    }

    static func received(_ channel: EmbeddedChannel) throws -> String {
        var text = ""
        while let buffer = try channel.readInbound(as: ByteBuffer.self) { text += String(buffer: buffer) }
        return text
    }

    static func outbound(_ channel: EmbeddedChannel) throws -> [UInt8] {
        var bytes: [UInt8] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { bytes += buffer.readableBytesView }
        return bytes
    }

    static func tlsClientHandler() throws -> NIOSSLClientHandler {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = .none
        return try NIOSSLClientHandler(context: NIOSSLContext(configuration: configuration), serverHostname: nil)
    }

    /// Carries bytes both ways until neither side has more.
    static func shuttle(_ bench: Bench, _ client: EmbeddedChannel, _ server: EmbeddedChannel) throws {
        var moved = true
        while moved {
            bench.loop.run()
            moved = try move(client, to: server)
            bench.loop.run()
            moved = try move(server, to: client) || moved
        }
    }

    @Test(
        "the go-ahead waiting for a slow peer reaches the client in plain text, then the handshake, then what was written after, encrypted",
        arguments: [true, false]
    )
    func goAheadGoesOutInPlainText(ehloFirst: Bool) throws {
        let bench = try Bench(["ssl_handshake_timeout": .integer(5)])
        let budget = SendBufferBudget()
        let service = SMTP(loop: bench.loop)
        let (server, socket) = try Self.connect(bench, service, budget)
        // With the EHLO reply first, the go-ahead waits in the connection's backlog
        // behind it; without, it is the write the channel holds.
        var plain = ""
        if ehloFirst {
            try server.writeInbound(ByteBuffer(string: "EHLO"))
            plain += Self.ehloReply
        }
        try server.writeInbound(ByteBuffer(string: "STARTTLS"))
        plain += Self.goAhead
        let connection = try #require(service.connection.value)
        #expect(connection.isTLS)
        #expect(!bench.hasTLSStage(server), "the TLS stage went in while the go-ahead still waited to be sent")
        #expect(budget.used > 0 && budget.used == connection.queuedSendStorage)
        #expect(!SendBufferTests.reads(server), "reading goes on before the TLS stage is in")

        // The peer reads: the plain text goes out, and only then the TLS stage goes in.
        socket.open()
        bench.loop.run()
        #expect(bench.hasTLSStage(server))
        #expect(SendBufferTests.reads(server), "reading stays stopped once the TLS stage is in")

        // The client reads the go-ahead in plain text before starting its handshake.
        let client = EmbeddedChannel(loop: bench.loop)
        bench.track(client)
        try client.connect(to: SocketAddress(ipAddress: "192.0.2.1", port: 25)).wait()
        _ = try Self.move(server, to: client)
        #expect(try Self.received(client) == plain, "the client did not get exactly the plain text written before starttls")
        #expect(try Self.outbound(server).isEmpty, "the server sent TLS bytes before the client's hello")

        try client.pipeline.syncOperations.addHandler(try Self.tlsClientHandler())
        try Self.shuttle(bench, client, server)
        #expect(try Self.received(client) == Self.afterStartTLS + "<status>")
        #expect(connection.queuedSendStorage == 0)
        #expect(budget.used == 0)
        #expect(server.isActive)
        #expect(service.disconnects.withLockedValue { $0 }.isEmpty)
    }

    @Test("a client that sends its hello without waiting for the go-ahead: the hello waits for the TLS stage, which answers after the plain text")
    func eagerHelloWaitsForTheStage() throws {
        let bench = try Bench(["ssl_handshake_timeout": .integer(5)])
        let budget = SendBufferBudget()
        let service = SMTP(loop: bench.loop)
        let (server, socket) = try Self.connect(bench, service, budget)
        try server.writeInbound(ByteBuffer(string: "EHLO"))
        try server.writeInbound(ByteBuffer(string: "STARTTLS"))
        let connection = try #require(service.connection.value)

        let client = EmbeddedChannel(loop: bench.loop)
        bench.track(client)
        try client.pipeline.syncOperations.addHandler(try Self.tlsClientHandler())
        try client.connect(to: SocketAddress(ipAddress: "192.0.2.1", port: 25)).wait()
        bench.loop.run()
        // Read although reading was stopped (the read under way goes on): held, not delivered.
        #expect(try Self.move(client, to: server), "the client sent no hello")
        #expect(service.disconnects.withLockedValue { $0 }.isEmpty)

        socket.open()
        bench.loop.run()
        let sent = try Self.outbound(server)
        let plain = Array((Self.ehloReply + Self.goAhead).utf8)
        #expect(Array(sent.prefix(plain.count)) == plain, "the output did not start with the plain text")
        #expect(sent.count > plain.count, "the TLS stage did not answer the hello it was handed")
        // The TLS client takes the rest (its handshake), as it would after reading the line.
        try client.writeInbound(ByteBuffer(bytes: sent.dropFirst(plain.count)))
        try Self.shuttle(bench, client, server)
        #expect(try Self.received(client) == Self.afterStartTLS + "<status>")
        #expect(connection.queuedSendStorage == 0)
        #expect(budget.used == 0)
    }

    @Test("a peer that never reads the go-ahead: closed at send_timeout, not a millisecond before, the held bytes uncounted")
    func peerThatNeverReadsIsClosed() throws {
        // The handshake timeout (5 s) counts from when the TLS stage goes in, which never
        // happens here: the wait for the plain text is send_timeout's.
        let bench = try Bench(["ssl_handshake_timeout": .integer(5)])
        let budget = SendBufferBudget()
        let service = SMTP(loop: bench.loop)
        let (server, _) = try Self.connect(bench, service, budget) { $0.sendTimeout = 10 }
        try server.writeInbound(ByteBuffer(string: "EHLO"))
        try server.writeInbound(ByteBuffer(string: "STARTTLS"))
        let connection = try #require(service.connection.value)
        #expect(budget.used > 0 && budget.used == connection.queuedSendStorage)
        #expect(!bench.hasTLSStage(server))

        bench.advance(by: .milliseconds(9999))
        #expect(!bench.isClosed(server))
        #expect(budget.used > 0)
        bench.advance(by: .milliseconds(1))
        #expect(bench.isClosed(server))
        #expect(service.disconnects.withLockedValue { $0 } == ["send timeout"])
        #expect(budget.used == 0, "the budget kept the bytes of a closed connection")
    }

    @Test("writes after starttls while the go-ahead waits count toward max_send_buffer_size; past it the connection is closed")
    func heldWritesCountWhileWaiting() throws {
        let bench = try Bench(["ssl_handshake_timeout": .integer(5)])
        let budget = SendBufferBudget()
        let service = SMTP(loop: bench.loop)
        let (server, _) = try Self.connect(bench, service, budget) { $0.maxSendBufferSize = 16 * 1024 }
        try server.writeInbound(ByteBuffer(string: "EHLO"))
        try server.writeInbound(ByteBuffer(string: "STARTTLS"))
        let connection = try #require(service.connection.value)
        #expect(connection.write(SendBufferTests.chunk(8)))
        #expect(budget.used == connection.queuedSendStorage && budget.used > 8 * 1024)
        #expect(!connection.write(SendBufferTests.chunk(9)))
        #expect(bench.isClosed(server))
        #expect(service.disconnects.withLockedValue { $0 } == ["send buffer full"])
        #expect(budget.used == 0)
    }

    /// What NIO does, which the above relies on less than it might: writes the channel
    /// already holds sit below a TLS stage added later, so they go out in plain text,
    /// ahead of its records. (NetHost waits for them anyway, as Prosody waits for its
    /// write buffer to empty.)
    @Test("NIO: writes held in the channel when a NIOSSL stage is added go out unencrypted, before its handshake")
    func channelHeldWritesStayPlain() throws {
        let bench = try Bench(["ssl_handshake_timeout": .integer(5)])
        let server = EmbeddedChannel(loop: bench.loop)
        bench.track(server)
        let socket = StalledSocket()
        try server.pipeline.syncOperations.addHandler(socket)
        try server.connect(to: SocketAddress(ipAddress: "198.51.100.21", port: 40025)).wait()
        server.writeAndFlush(ByteBuffer(string: Self.goAhead), promise: nil)
        let tls = try #require(bench.tls.shared)
        try server.pipeline.syncOperations.addHandler(tls.makeHandler())

        let client = EmbeddedChannel(loop: bench.loop)
        bench.track(client)
        try client.connect(to: SocketAddress(ipAddress: "192.0.2.1", port: 25)).wait()
        socket.open()
        bench.loop.run()
        _ = try Self.move(server, to: client)
        #expect(try Self.received(client) == Self.goAhead)
        try client.pipeline.syncOperations.addHandler(try Self.tlsClientHandler())
        try Self.shuttle(bench, client, server)
        let handshakeDone = try? client.pipeline.syncOperations.handler(type: NIOSSLClientHandler.self)
        #expect(handshakeDone != nil)
        server.writeAndFlush(ByteBuffer(string: "encrypted"), promise: nil)
        try Self.shuttle(bench, client, server)
        #expect(try Self.received(client) == "encrypted")
    }
}

import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NetHostTestSupport
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging

/// Send buffers bounded as HAProxy and nginx bound them: a connection stops reading
/// while its output (or the output its input is relayed to) is above the high-water
/// mark, the limits count memory rather than payload, and all connections together
/// stay under `max_send_buffer_total`. Virtual time, on `EmbeddedChannel`s whose
/// "socket" takes nothing until the test opens it. (Over real sockets:
/// `SendBufferSocketTests`.)
@Suite("Send buffer backpressure")
struct SendBufferTests {
    /// Stands for a socket whose peer reads nothing: it holds every flush, so writes
    /// stay queued in the channel, until `open()`, after which it takes everything.
    /// It also counts the reads the connection asks for.
    final class StalledSocket: ChannelOutboundHandler {
        typealias OutboundIn = ByteBuffer
        private var context: ChannelHandlerContext?
        private var isOpen: Bool
        private var flushHeld = false
        /// Promises of writes held back, failed at close as a socket channel fails them
        /// (an EmbeddedChannel would leave them pending, keeping what their callbacks hold).
        private var heldWrites: [EventLoopPromise<Void>] = []
        private(set) var reads = 0

        /// `open`: the peer reads until `stall()`.
        init(open: Bool = false) { isOpen = open }

        func handlerAdded(context: ChannelHandlerContext) { self.context = context }
        func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            if !isOpen, let promise { heldWrites.append(promise) }
            context.write(data, promise: promise)
        }

        func flush(context: ChannelHandlerContext) {
            if isOpen {
                context.flush()
            } else {
                flushHeld = true
            }
        }

        func read(context: ChannelHandlerContext) {
            reads += 1
            context.read()
        }

        func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
            let unsent = heldWrites
            heldWrites = []
            for write in unsent { write.fail(ChannelError.ioOnClosedChannel) }
            context.close(mode: mode, promise: promise)
        }

        /// The peer stops reading: later flushes are held until `open()`.
        func stall() { isOpen = false }

        /// The peer reads again, and keeps up from now on.
        func open() {
            isOpen = true
            heldWrites = []  // the channel completes them as it sends them
            if flushHeld, let context {
                flushHeld = false
                context.flush()
            }
        }
    }

    /// A Swift service: echoes, or relays to `target` when one is set, or on "ones N"
    /// writes N one-byte buffers. Records its connection and why it ended.
    final class Service: ConnectionListener {
        let connection: NIOLoopBoundBox<Connection?>
        let target: NIOLoopBoundBox<Connection?>
        let disconnects = NIOLockedValueBox<[String?]>([])

        init(loop: any EventLoop) {
            connection = NIOLoopBoundBox(nil, eventLoop: loop)
            target = NIOLoopBoundBox(nil, eventLoop: loop)
        }

        func onConnect(_ connection: Connection) throws {
            self.connection.value = connection
        }

        func onIncoming(_ connection: Connection, data: ByteBuffer) throws {
            let text = String(buffer: data)
            if text.hasPrefix("ones "), let count = Int(text.dropFirst(5)) {
                for index in 0..<count {
                    guard connection.write(ByteBuffer(integer: UInt8(truncatingIfNeeded: index % 251))) else { return }
                }
                return
            }
            (target.value ?? connection).write(data)
        }

        func onDisconnect(_ connection: Connection, reason: String?) {
            disconnects.withLockedValue { $0.append(reason) }
            // A connection holds its listener: keeping it here past its end would be
            // a cycle, which LeakSanitizer (make sanitize-address) reports.
            if self.connection.value === connection { self.connection.value = nil }
            if target.value === connection { target.value = nil }
        }
    }

    /// Connections on one loop; each is closed, and the loop shut down, when it goes.
    final class Fixture {
        let loop = EmbeddedEventLoop()
        let logs = LogCapture()
        let budget = SendBufferBudget()
        private var channels: [EmbeddedChannel] = []

        /// Settings with this fixture's own budget, so no other test's connections count.
        func settings(_ change: (inout NetworkSettings) -> Void = { _ in }) -> NetworkSettings {
            var settings = NetworkSettings()
            settings.sendBufferBudget = budget
            change(&settings)
            return settings
        }

        func connect(
            _ listener: any ConnectionListener, settings: NetworkSettings, from address: String = "127.0.0.1", port: Int = 9
        ) throws -> (EmbeddedChannel, StalledSocket) {
            let channel = EmbeddedChannel(loop: loop)
            let socket = StalledSocket()
            try channel.pipeline.syncOperations.addHandlers([
                socket,
                ConnectionHandler(serviceName: "service", listener: listener, settings: settings,
                                  logger: Logger(label: "test", factory: logs.handler(label:))),
            ])
            channels.append(channel)
            try channel.connect(to: SocketAddress(ipAddress: address, port: port)).wait()
            return (channel, socket)
        }

        deinit {
            for channel in channels {
                _ = try? channel.finish(acceptAlreadyClosed: true)
            }
            try? loop.syncShutdownGracefully()
        }
    }

    /// Whether the connection on `channel` reads: NIO's autoRead, as last set.
    static func reads(_ channel: EmbeddedChannel) -> Bool {
        channel.options.last { $0.option is ChannelOptions.Types.AutoReadOption }?.value as? Bool ?? true
    }

    static func chunk(_ kibibytes: Int) -> ByteBuffer {
        ByteBuffer(repeating: UInt8(ascii: "x"), count: kibibytes * 1024)
    }

    static func sent(_ channel: EmbeddedChannel) throws -> (buffers: Int, bytes: [UInt8]) {
        var buffers = 0
        var bytes: [UInt8] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) {
            if buffer.readableBytes > 0 { buffers += 1 }
            bytes += buffer.readableBytesView
        }
        return (buffers, bytes)
    }

    @Test("a service writing to its own connection: reading stops above the high-water mark and resumes once it drains")
    func ownOutputPausesReading() throws {
        let fixture = Fixture()
        let service = Service(loop: fixture.loop)
        let (channel, socket) = try fixture.connect(service, settings: fixture.settings())
        for _ in 0..<3 {
            try channel.writeInbound(Self.chunk(16))
        }
        #expect(Self.reads(channel), "stopped reading below the high-water mark (64 KiB)")
        for _ in 0..<2 {
            try channel.writeInbound(Self.chunk(16))
        }
        #expect(!Self.reads(channel), "still reading with 80 KiB waiting for a peer that reads nothing")
        let readsBefore = socket.reads

        socket.open()
        fixture.loop.run()
        #expect(Self.reads(channel), "not reading again once everything was sent")
        #expect(socket.reads > readsBefore, "autoRead back on, but no read asked for")
        #expect(try Self.sent(channel).bytes.count == 80 * 1024)
        #expect(service.connection.value?.queuedSendStorage == 0)
        #expect(fixture.budget.used == 0)
    }

    @Test("a relay: writing past another connection's high-water mark stops the writer's reads until that one drains")
    func relayPausesTheWriter() throws {
        let fixture = Fixture()
        let relay = Service(loop: fixture.loop)
        let sink = Service(loop: fixture.loop)
        let (input, _) = try fixture.connect(relay, settings: fixture.settings())
        let (output, outputSocket) = try fixture.connect(sink, settings: fixture.settings())
        relay.target.value = sink.connection.value
        for _ in 0..<5 {
            try input.writeInbound(Self.chunk(16))
        }
        #expect(!Self.reads(input), "the writer kept reading while the connection it relays to is above its mark")
        #expect(try Self.sent(input).bytes.isEmpty)

        outputSocket.open()
        fixture.loop.run()
        #expect(Self.reads(input), "the writer did not read again once the target drained")
        #expect(Self.reads(output))
        #expect(try Self.sent(output).bytes.count == 80 * 1024)
        #expect(fixture.budget.used == 0)
    }

    @Test("a Lua broadcast (the shipped mod_demo_chat): a member that reads nothing stops the sender's reads, until it drains")
    func luaBroadcastPausesTheSender() throws {
        let chat = try String(contentsOfFile: Self.shippedModule("mod_demo_chat.lua"), encoding: .utf8)
        let harness = try ModuleHarness(modules: ["demo_chat": chat], options: ["modules_enabled": .strings("demo_chat")])
        let fixture = Fixture()
        let sender = try harness.connect(to: "demo_chat", settings: fixture.settings())
        let member = try harness.connect(to: "demo_chat", settings: fixture.settings())
        _ = try sender.sent()
        _ = try member.sent()
        let memberSocket = StalledSocket()
        try member.pipeline.syncOperations.addHandler(memberSocket, position: .first)

        let line = String(repeating: "y", count: 1000) + "\n"
        for _ in 0..<10 {
            try sender.writeInbound(ByteBuffer(string: String(repeating: line, count: 10)))
        }
        #expect(!Self.reads(sender), "the sender kept reading while a member's buffer was above its mark")
        #expect(!Self.reads(member))

        memberSocket.open()
        harness.loop.run()
        #expect(Self.reads(sender), "the sender did not read again once the member drained")
        #expect(Self.reads(member))
        let received = String(decoding: try Self.sent(member).bytes, as: UTF8.self)
        #expect(received.split(separator: "\n").count == 100)
        #expect(fixture.budget.used == 0)
    }

    @Test("max_send_buffer_size counts buffer storage: 3,000 one-byte writes close a connection limited to 4,096 bytes")
    func storageNotPayload() throws {
        let fixture = Fixture()
        let service = Service(loop: fixture.loop)
        let (channel, _) = try fixture.connect(service, settings: fixture.settings { $0.maxSendBufferSize = 4096 })
        // 3,000 bytes of payload: under the limit as payload, over it as memory (a
        // buffer per write, or 2,049 bytes and more copied into a 4 KiB chunk).
        try channel.writeInbound(ByteBuffer(string: "ones 3000"))
        #expect(!channel.isActive, "still open holding 3,000 one-byte writes under a 4,096-byte limit")
        #expect(service.disconnects.withLockedValue { $0 } == ["send buffer full"])
        #expect(fixture.logs.contains("send buffer full, closing the connection"))
        #expect(fixture.budget.used == 0)
    }

    @Test("a peer that stops reading after keeping up is noticed within directWritesPerCheck writes, and then counted")
    func peerThatStopsIsNoticed() throws {
        let fixture = Fixture()
        let service = Service(loop: fixture.loop)
        let (channel, socket) = try fixture.connect(service, settings: fixture.settings())
        socket.open()
        // The peer keeps up: enough writes for the checks to thin out.
        for _ in 0..<100 {
            try channel.writeInbound(ByteBuffer(string: "x"))
        }
        #expect(try Self.sent(channel).bytes.count == 100)
        #expect(service.connection.value?.queuedSendStorage == 0)

        // The peer stops: the socket takes nothing more.
        let stalled = StalledSocket()
        try channel.pipeline.syncOperations.addHandler(stalled, position: .first)
        let perCheck = Int(Connection.directWritesPerCheck)
        for _ in 0..<perCheck {
            try channel.writeInbound(ByteBuffer(string: "y"))
        }
        let counted = try #require(service.connection.value?.queuedSendStorage)
        #expect(counted > 0, "\(perCheck) writes to a peer that reads nothing, and nothing counted")
        #expect(fixture.budget.used == counted)
        // From now on writes wait in the connection, counted as they come.
        try channel.writeInbound(Self.chunk(16))
        #expect((service.connection.value?.queuedSendStorage ?? 0) >= counted + 16 * 1024)

        stalled.open()
        fixture.loop.run()
        #expect(try Self.sent(channel).bytes.count == perCheck + 16 * 1024)
        #expect(fixture.budget.used == 0)
    }

    @Test("small writes to a peer that is not reading are copied together: 10,000 one-byte writes leave as a few buffers")
    func smallWritesAreCoalesced() throws {
        let fixture = Fixture()
        let service = Service(loop: fixture.loop)
        let (channel, socket) = try fixture.connect(service, settings: fixture.settings())
        try channel.writeInbound(ByteBuffer(string: "ones 10000"))
        let held = try #require(service.connection.value?.queuedSendStorage)
        // Counted as memory, and small: a buffer of 129 bytes per write would be 1.3 MB.
        #expect(held >= 10_000 && held < 20_000, "\(held) bytes counted for 10,000 one-byte writes")
        #expect(fixture.budget.used == held)

        socket.open()
        fixture.loop.run()
        let sent = try Self.sent(channel)
        #expect(sent.bytes == (0..<10_000).map { UInt8(truncatingIfNeeded: $0 % 251) })
        #expect(sent.buffers <= 4, "\(sent.buffers) buffers reached the socket")
        #expect(fixture.budget.used == 0)
    }

    @Test("past max_send_buffer_total the connection growing its buffer is closed, counted and logged with its client")
    func globalBudget() throws {
        let fixture = Fixture()
        let settings = fixture.settings { $0.maxSendBufferTotal = 96 * 1024 }
        let first = Service(loop: fixture.loop)
        let second = Service(loop: fixture.loop)
        let (firstChannel, firstSocket) = try fixture.connect(first, settings: settings)
        let (secondChannel, _) = try fixture.connect(second, settings: settings, from: "127.0.0.2", port: 4242)
        for _ in 0..<3 {
            try firstChannel.writeInbound(Self.chunk(16))
        }
        #expect(firstChannel.isActive)
        for _ in 0..<3 {
            try secondChannel.writeInbound(Self.chunk(16))
        }
        #expect(!secondChannel.isActive, "both kept about 48 KiB each under a 96 KiB budget")
        #expect(firstChannel.isActive, "the connection that was not growing was closed")
        #expect(second.disconnects.withLockedValue { $0 } == ["send buffers over max_send_buffer_total"])
        #expect(fixture.budget.shedConnections == 1)
        let line = try #require(fixture.logs.all.first { $0.contains("max_send_buffer_total") })
        #expect(line.contains("client=127.0.0.2:4242"), "\(line)")

        firstSocket.open()
        fixture.loop.run()
        #expect(try Self.sent(firstChannel).bytes.count == 48 * 1024)
        #expect(fixture.budget.used == 0, "the budget kept what was sent or dropped")
    }

    @Test("network_settings.max_send_buffer_total is read, defaults to at most 512 MiB, and refuses what is not a size")
    func totalOption() throws {
        #expect(NetworkSettings().maxSendBufferTotal <= 512 * 1024 * 1024)
        #expect(NetworkSettings().maxSendBufferTotal >= 16 * 1024 * 1024)
        #expect(try NetworkSettings.parsing(["max_send_buffer_total": .integer(1 << 20)]).maxSendBufferTotal == 1 << 20)
        var problems: [NetworkSettings.Problem] = []
        let table = ConfigTable(map: [.string("max_send_buffer_total"): .string("lots")])
        _ = NetworkSettings(from: table, problems: &problems)
        #expect(problems.map(\.option) == ["max_send_buffer_total"])
    }

    @Test("Lua services read at most 16 KiB at a time unless read_size says otherwise; Swift services 64 KiB")
    func luaReadSize() throws {
        let echo = try String(contentsOfFile: Self.shippedModule("mod_demo_echo.lua"), encoding: .utf8)
        let harness = try ModuleHarness(modules: ["demo_echo": echo], options: ["modules_enabled": .strings("demo_echo")])
        func readSize(_ channel: EmbeddedChannel) -> Int? {
            (channel.options.last { $0.option is ChannelOptions.Types.RecvAllocatorOption }?.value
                as? CompactAdaptiveRecvAllocator)?.maximum
        }
        #expect(readSize(try harness.connect(to: "demo_echo")) == 16 * 1024)
        // Set explicitly, read_size holds for Lua services too (the port set it at accept).
        #expect(readSize(try harness.connect(to: "demo_echo", settings: try .parsing(["read_size": .integer(65536)]))) == nil)
        let fixture = Fixture()
        let (swift, _) = try fixture.connect(Service(loop: fixture.loop), settings: fixture.settings())
        #expect(readSize(swift) == nil)
    }

    /// A module shipped in the repository's modules/.
    static func shippedModule(_ name: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("modules").appendingPathComponent(name).path
    }
}

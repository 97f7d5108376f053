import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NetHost
import NetHostTestSupport
import ProxyProtocol
import Testing
@testable import ProxyModule

/// The PROXY stage alone, in an `EmbeddedChannel` on virtual time: it reads
/// exactly the header, hands the connection to the mapped service (`onconnect`,
/// then the bytes that followed the header), leaves the pipeline, and refuses
/// what it must with the outcome counted.
@Suite("PROXY stage in an EmbeddedChannel")
struct ProxyHeaderStageTests {
    static let port = 15222
    static let proxy = try! SocketAddress(ipAddress: "127.0.0.1", port: 40000)
    static let header = "PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n"

    /// What the service saw, in order.
    final class Recorder: ConnectionListener {
        let events = NIOLockedValueBox<[String]>([])
        func onConnect(_ connection: Connection) throws {
            events.withLockedValue { $0.append("connect \(connection.addresses.clientIP):\(connection.addresses.clientPort)") }
        }
        func onIncoming(_ connection: Connection, data: ByteBuffer) throws {
            events.withLockedValue { $0.append("data \(String(buffer: data))") }
        }
        var wantsDrain: Bool { false }
    }

    /// One stage on its own channel, with a service `svc` behind port 15222.
    /// It closes the channel when it goes: an open EmbeddedChannel and its
    /// pipeline keep each other, and a pending time limit keeps the loop.
    final class Stage {
        let loop = EmbeddedEventLoop()
        let channel: EmbeddedChannel
        let recorder = Recorder()
        let statistics = ProxyStatistics()
        let logs = LogCapture()

        init(from peer: SocketAddress = ProxyHeaderStageTests.proxy, settings: NetworkSettings = NetworkSettings(),
             pending: PendingHeaders = PendingHeaders()) throws {
            let logger = Logger(label: "stage", factory: logs.handler(label:))
            let services = ServiceRegistry()
            try services.add(NetService(name: "svc", handling: .listener(recorder, .anyLoop), module: "test"))
            let runtime = ProxyRuntime(
                liveConfiguration: LiveValue(ProxyConfiguration(portMappings: [ProxyHeaderStageTests.port: "svc"])),
                statistics: statistics, events: RepeatedEventLog(logger: logger), pending: pending
            )
            let context = PipelineContext(
                services: services, settings: LiveValue(settings), logger: logger, tracker: ConnectionTracker(), luaLoop: loop
            )
            channel = EmbeddedChannel(loop: loop)
            try channel.pipeline.syncOperations.addHandler(
                ProxyHeaderHandler(port: ProxyHeaderStageTests.port, runtime: runtime, context: context))
            try channel.connect(to: peer).wait()
        }

        deinit {
            _ = try? channel.finish(acceptAlreadyClosed: true)
        }

        func send(_ text: String) throws {
            try channel.writeInbound(ByteBuffer(string: text))
        }

        var events: [String] { recorder.events.withLockedValue { $0 } }
        var stageIsInPipeline: Bool { (try? channel.pipeline.syncOperations.handler(type: ProxyHeaderHandler.self)) != nil }
        func count(_ outcome: ProxyStatistics.Outcome) -> Int { statistics.count(outcome, port: ProxyHeaderStageTests.port) }
    }

    @Test("a header and data in one read: onconnect with the header's client, then exactly the bytes after it; the stage leaves")
    func handOverWithLeftovers() throws {
        let stage = try Stage()
        try stage.send(Self.header + "hello")
        #expect(stage.events == ["connect 203.0.113.7:51234", "data hello"])
        #expect(!stage.stageIsInPipeline)
        #expect(stage.count(.proxied) == 1)
        try stage.send(" again")
        #expect(stage.events.last == "data  again")
    }

    @Test("a header that arrives a byte at a time is handed over once it is complete, and not before")
    func byteByByte() throws {
        let stage = try Stage()
        let bytes = Array(Self.header.utf8)
        for byte in bytes.dropLast() {
            try stage.channel.writeInbound(ByteBuffer(bytes: [byte]))
        }
        #expect(stage.events.isEmpty)
        #expect(stage.stageIsInPipeline)
        try stage.channel.writeInbound(ByteBuffer(bytes: [bytes[bytes.count - 1]]))
        #expect(stage.events == ["connect 203.0.113.7:51234"])
        #expect(!stage.stageIsInPipeline)
    }

    @Test("no complete header within proxy_header_timeout: open at 4.999 s, closed and counted at 5 s")
    func headerTimeout() throws {
        let stage = try Stage()
        try stage.send("PROXY TCP4 ")
        stage.loop.advanceTime(by: .milliseconds(4999))
        #expect(stage.channel.isActive)
        stage.loop.advanceTime(by: .milliseconds(1))
        #expect(!stage.channel.isActive)
        #expect(stage.count(.timeout) == 1)
        #expect(stage.events.isEmpty)
        #expect(stage.logs.contains("no complete PROXY header within 5.0 s"))
    }

    @Test("an untrusted peer is closed before a byte is read")
    func untrustedPeer() throws {
        let stage = try Stage(from: try SocketAddress(ipAddress: "198.51.100.1", port: 40000))
        #expect(!stage.channel.isActive)
        #expect(stage.count(.untrusted) == 1)
        #expect(stage.events.isEmpty)
    }

    @Test("a malformed header is closed and counted with its reason; nothing reaches the service")
    func invalidHeader() throws {
        let stage = try Stage()
        try stage.send("GET / HTTP/1.1\r\n\r\n")
        #expect(!stage.channel.isActive)
        #expect(stage.count(.invalid) == 1)
        #expect(stage.statistics.invalidCount(reason: "badSignature") == 1)
        #expect(stage.events.isEmpty)
    }

    @Test("a peer that closes mid-header is counted as closed_early, and its pending slot is given back")
    func closedEarly() throws {
        let pending = PendingHeaders()
        var settings = NetworkSettings()
        settings.maxPendingHeadersPerIP = 1
        let first = try Stage(settings: settings, pending: pending)
        try first.send("PROXY TCP4 ")
        _ = try first.channel.close().wait()
        #expect(first.count(.closedEarly) == 1)
        let second = try Stage(settings: settings, pending: pending)
        #expect(second.channel.isActive, "the slot was not given back")
    }

    @Test("past max_pending_headers_per_ip a new connection from the same address is refused")
    func pendingLimit() throws {
        let pending = PendingHeaders()
        var settings = NetworkSettings()
        settings.maxPendingHeadersPerIP = 1
        let first = try Stage(settings: settings, pending: pending)
        let second = try Stage(settings: settings, pending: pending)
        #expect(first.channel.isActive)
        #expect(!second.channel.isActive)
        #expect(second.count(.overLimit) == 1)
    }
}

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

    /// Closes that the stage asks for, held back: the channel stays open, so a test
    /// can see what the stage does with what comes after it has refused.
    final class HoldClose: ChannelOutboundHandler, @unchecked Sendable {
        typealias OutboundIn = Never
        private(set) var requests = 0
        func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
            requests += 1
            promise?.succeed()
        }
    }

    /// One stage on its own channel, with a service `svc` behind port 15222 unless
    /// told otherwise. It closes the channel when it goes: an open EmbeddedChannel
    /// and its pipeline keep each other, and a pending time limit keeps the loop.
    final class Stage {
        let loop = EmbeddedEventLoop()
        let channel: EmbeddedChannel
        let recorder = Recorder()
        let statistics: ProxyStatistics
        let logs: LogCapture
        let pending: PendingHeaders
        /// What the stage shares with every connection of the module (`sharing` another stage: the same one).
        let runtime: ProxyRuntime
        let stage: ProxyHeaderHandler
        let holdClose: HoldClose?

        /// - Parameters:
        ///   - peer: the proxy's address; nil for a peer gone before the accept completed.
        ///   - mappings: `proxy_port_mappings`.
        ///   - service: what the registry offers as `svc` (nil: nothing); `recorder` listens.
        ///   - luaLoop: the loop Lua runs on (default: the channel's).
        ///   - holdingClose: hold back the stage's close (see `HoldClose`).
        ///   - maxPendingHeadersPerIP: `network_settings.max_pending_headers_per_ip`.
        ///   - maxPendingHeaders: `proxy_max_pending_headers` (nil: its default).
        ///   - other: a stage whose runtime (options, counters, log, pending headers) this one
        ///     shares, as the connections of one module do; each stage keeps its own loop.
        ///   - tls: the TLS contexts, for a direct-TLS service (nil: none).
        init(from peer: SocketAddress? = ProxyHeaderStageTests.proxy, settings: NetworkSettings = NetworkSettings(),
             pending: PendingHeaders = PendingHeaders(), mappings: [Int: String] = [ProxyHeaderStageTests.port: "svc"],
             service: ((any ConnectionListener) -> NetService)? = { NetService(name: "svc", handling: .listener($0, .anyLoop), module: "test") },
             luaLoop: (any EventLoop)? = nil, holdingClose: Bool = false, maxPendingHeadersPerIP: Int = 256,
             maxPendingHeaders: Int? = nil, sharing other: Stage? = nil, tls: TLSContexts? = nil) throws {
            let logs = other?.logs ?? LogCapture()
            let logger = Logger(label: "stage", factory: logs.handler(label:))
            let services = ServiceRegistry()
            if let service {
                try services.add(service(recorder))
            }
            let runtime: ProxyRuntime
            if let other {
                runtime = other.runtime
            } else {
                // Read as the module reads its options.
                let options: [String: ConfigValue] = [
                    "proxy_port_mappings": .table(ConfigTable(map: Dictionary(uniqueKeysWithValues: mappings.map { (ConfigKey.integer($0.key), ConfigValue.string($0.value)) }))),
                    "network_settings": .table(ConfigTable(map: [.string("max_pending_headers_per_ip"): .integer(maxPendingHeadersPerIP)])),
                ].merging(maxPendingHeaders.map { ["proxy_max_pending_headers": .integer($0)] } ?? [:]) { $1 }
                runtime = ProxyRuntime(
                    liveConfiguration: LiveValue(try ProxyConfiguration { options[$0.name] }),
                    statistics: ProxyStatistics(), events: RepeatedEventLog(logger: logger), pending: pending
                )
            }
            self.runtime = runtime
            self.logs = logs
            self.statistics = runtime.statistics
            self.pending = runtime.pending
            let context = PipelineContext(
                services: services, settings: LiveValue(settings), logger: logger, tracker: ConnectionTracker(), luaLoop: luaLoop ?? loop,
                tls: tls
            )
            channel = EmbeddedChannel(loop: loop)
            holdClose = holdingClose ? HoldClose() : nil
            if let holdClose {
                try channel.pipeline.syncOperations.addHandler(holdClose)
            }
            stage = ProxyHeaderHandler(port: ProxyHeaderStageTests.port, runtime: runtime, context: context)
            try channel.pipeline.syncOperations.addHandler(stage)
            if let peer {
                try channel.connect(to: peer).wait()
            } else {
                channel.pipeline.fireChannelActive()
            }
        }

        deinit {
            _ = try? channel.finish(acceptAlreadyClosed: true)
        }

        func send(_ text: String) throws {
            try channel.writeInbound(ByteBuffer(string: text))
        }

        func send(_ bytes: [UInt8]) throws {
            try channel.writeInbound(ByteBuffer(bytes: bytes))
        }

        var events: [String] { recorder.events.withLockedValue { $0 } }
        var stageIsInPipeline: Bool { (try? channel.pipeline.syncOperations.handler(type: ProxyHeaderHandler.self)) != nil }
        func count(_ outcome: ProxyStatistics.Outcome) -> Int { statistics.count(outcome, port: ProxyHeaderStageTests.port) }
        /// A count of the port's statistics line (`shed`, `shed.perAddress`, ...), 0 if it has none.
        func counted(_ key: String) -> Int {
            statistics.summary(port: ProxyHeaderStageTests.port).first { $0.key == key }?.count ?? 0
        }
        /// Every outcome counted on the port: one per connection.
        var outcomes: [ProxyStatistics.Outcome] {
            ProxyStatistics.Outcome.allCases.flatMap { Array(repeating: $0, count: count($0)) }
        }
        /// Bytes the stage passed on down the pipeline itself (not through a service).
        func passedOn() throws -> ByteBuffer? { try channel.readInbound(as: ByteBuffer.self) }
        /// Nothing left held: no pending-header slot, no time limit on the loop's wheel.
        var holdsNothing: Bool { pending.addressCount == 0 && !stage.loopTimerSlot.isScheduled }
    }

    // MARK: Hand-over

    @Test("a header and data in one read: onconnect with the header's client, then exactly the bytes after it; the stage leaves")
    func handOverWithLeftovers() throws {
        let stage = try Stage()
        try stage.send(Self.header + "hello")
        #expect(stage.events == ["connect 203.0.113.7:51234", "data hello"])
        #expect(!stage.stageIsInPipeline)
        #expect(stage.outcomes == [.proxied])
        #expect(stage.holdsNothing)
        try stage.send(" again")
        #expect(stage.events.last == "data  again")
        #expect(try stage.passedOn() == nil, "the service took the bytes; none went past it")
    }

    @Test("a header alone: onconnect, and onincoming is not called until data comes")
    func handOverWithoutLeftovers() throws {
        let stage = try Stage()
        try stage.send(Self.header)
        #expect(stage.events == ["connect 203.0.113.7:51234"])
        #expect(!stage.stageIsInPipeline)
        try stage.send("later")
        #expect(stage.events == ["connect 203.0.113.7:51234", "data later"])
    }

    @Test("a header that arrives a byte at a time is handed over once it is complete, and not before",
          arguments: [Array(ProxyHeaderStageTests.header.utf8), NamedHeader.v2WithTLVs.bytes])
    func byteByByte(header: [UInt8]) throws {
        let stage = try Stage()
        for byte in header.dropLast() {
            try stage.send([byte])
        }
        #expect(stage.events.isEmpty)
        #expect(stage.stageIsInPipeline)
        #expect(stage.pending.addressCount == 1, "a slot is held while the header is incomplete")
        try stage.send([header[header.count - 1]] + Array("data".utf8))
        #expect(stage.events == ["connect 203.0.113.7:51234", "data data"])
        #expect(!stage.stageIsInPipeline)
        #expect(stage.holdsNothing)
    }

    /// A complete header and how it is served.
    struct Served: Sendable, CustomTestStringConvertible {
        var testDescription: String
        var bytes: [UInt8]
        var outcome: ProxyStatistics.Outcome
        /// The client the service is told about.
        var client: String
    }

    @Test("each kind of complete header is handed over and counted as what it is", arguments: [
        Served(testDescription: "v1 TCP4", bytes: Array(header.utf8), outcome: .proxied, client: "203.0.113.7:51234"),
        Served(testDescription: "v2 TCP4", bytes: (try? Headers.v2TCP4()) ?? [], outcome: .proxied, client: "203.0.113.7:51234"),
        Served(testDescription: "v1 UNKNOWN", bytes: Array("PROXY UNKNOWN\r\n".utf8), outcome: .unknownAddresses, client: "127.0.0.1:40000"),
        Served(testDescription: "v2 LOCAL", bytes: (try? Headers.v2(command: .local, .unspecified)) ?? [], outcome: .local, client: "127.0.0.1:40000"),
    ])
    func servedOutcomes(served: Served) throws {
        #expect(!served.bytes.isEmpty)
        let stage = try Stage()
        try stage.send(served.bytes)
        #expect(stage.events == ["connect \(served.client)"])
        #expect(stage.outcomes == [served.outcome])
        #expect(!stage.stageIsInPipeline)
        #expect(stage.holdsNothing)
    }

    @Test("a header completed in time ends the time limit: at 10 s nothing has fired and the connection is served")
    func completedInTime() throws {
        let stage = try Stage()
        stage.loop.advanceTime(by: .milliseconds(4000))
        try stage.send(Self.header)
        #expect(stage.holdsNothing)
        stage.loop.advanceTime(by: .seconds(10))
        #expect(stage.channel.isActive)
        #expect(stage.outcomes == [.proxied])
        #expect(!stage.logs.contains("no complete PROXY header"))
        try stage.send("after the limit")
        #expect(stage.events.last == "data after the limit")
    }

    // MARK: Time limit

    @Test("no complete header within proxy_header_timeout: open at 4.999 s, closed and counted at 5 s")
    func headerTimeout() throws {
        let stage = try Stage()
        try stage.send("PROXY TCP4 ")
        stage.loop.advanceTime(by: .milliseconds(4999))
        #expect(stage.channel.isActive)
        stage.loop.advanceTime(by: .milliseconds(1))
        #expect(!stage.channel.isActive)
        #expect(stage.outcomes == [.timeout])
        #expect(stage.events.isEmpty)
        #expect(stage.holdsNothing)
        #expect(stage.logs.contains("warning no complete PROXY header within 5.0 s peer=127.0.0.1:40000 port=15222 received_bytes=11"))
    }

    @Test("the limit runs from the accept, not from the last byte: a header dripped a byte per 200 ms is cut off at 5 s")
    func drippedHeaderTimesOut() throws {
        let stage = try Stage()
        for byte in Array(Self.header.utf8).prefix(25) {
            #expect(stage.channel.isActive)
            try stage.send([byte])
            stage.loop.advanceTime(by: .milliseconds(199))
            #expect(stage.channel.isActive)
            stage.loop.advanceTime(by: .milliseconds(1))
        }
        #expect(!stage.channel.isActive)
        #expect(stage.outcomes == [.timeout])
        #expect(stage.logs.contains("no complete PROXY header within 5.0 s peer=127.0.0.1:40000 port=15222 received_bytes=25"))
        #expect(stage.events.isEmpty)
    }

    // MARK: Refusals

    @Test("an untrusted peer is closed before a byte is read, without a slot or a time limit")
    func untrustedPeer() throws {
        let stage = try Stage(from: try SocketAddress(ipAddress: "198.51.100.1", port: 40000))
        #expect(!stage.channel.isActive)
        #expect(stage.outcomes == [.untrusted])
        #expect(stage.events.isEmpty)
        #expect(stage.holdsNothing)
        #expect(stage.logs.contains(
            "warning refused a connection from an untrusted peer (not in proxy_trusted_proxies) peer=198.51.100.1:40000 port=15222"))
    }

    @Test("a malformed header is closed at once and counted with its reason; nothing reaches the service",
          arguments: MalformedHeader.all)
    func invalidHeader(malformed: MalformedHeader) throws {
        #expect(!malformed.bytes.isEmpty)
        let stage = try Stage()
        try stage.send(malformed.bytes)
        #expect(!stage.channel.isActive, "closed without any time passing")
        #expect(stage.outcomes == [.invalid])
        #expect(stage.events.isEmpty)
        #expect(stage.holdsNothing)
        let line = stage.logs.all.first { $0.hasPrefix("warning invalid PROXY header: ") }
        #expect(line?.contains(malformed.reason) == true, "\(line ?? "no line")")
        #expect(line?.contains("peer=127.0.0.1:40000 port=15222") == true)
    }

    @Test("a malformed header is counted by its reason")
    func invalidReason() throws {
        let stage = try Stage()
        try stage.send("GET / HTTP/1.1\r\n\r\n")
        #expect(stage.statistics.invalidCount(reason: "badSignature") == 1)
    }

    // MARK: Pending-header budgets

    /// The proxy's address with another source port: one more connection from it.
    static func proxy(port: Int) -> SocketAddress { try! SocketAddress(ipAddress: "127.0.0.1", port: port) }

    @Test("past max_pending_headers_per_ip (3) the 4th connection from the address is admitted and the oldest waiting one is shed, on its own loop")
    func shedsTheOldestFromTheAddress() throws {
        let first = try Stage(from: Self.proxy(port: 40000), maxPendingHeadersPerIP: 3)
        try first.send("PROXY TCP4 ")
        let second = try Stage(from: Self.proxy(port: 40001), sharing: first)
        let third = try Stage(from: Self.proxy(port: 40002), sharing: first)
        let fourth = try Stage(from: Self.proxy(port: 40003), sharing: first)
        #expect(fourth.channel.isActive, "the newest connection is admitted")
        #expect(fourth.stage.loopTimerSlot.isScheduled, "and waits for its header within the time limit")
        #expect(first.channel.isActive, "the oldest is closed by its own loop, which has not run yet")
        first.loop.run()
        #expect(!first.channel.isActive)
        #expect(!first.stage.loopTimerSlot.isScheduled)
        #expect(second.channel.isActive && third.channel.isActive && fourth.channel.isActive)
        #expect(first.counted("shed") == 1)
        #expect(first.counted("shed.perAddress") == 1)
        #expect(first.counted("closed_early") == 0 && first.counted("timeout") == 0, "counted once, as shed")
        #expect(first.logs.contains(
            "warning shed the oldest connection waiting for its PROXY header from this address, to admit a new one "
                + "(max_pending_headers_per_ip is 3) peer=127.0.0.1:40000 port=15222 received_bytes=11"))

        // The next one sheds the next oldest; the newest always stays.
        let fifth = try Stage(from: Self.proxy(port: 40004), sharing: first)
        second.loop.run()
        third.loop.run()
        #expect(!second.channel.isActive)
        #expect(third.channel.isActive && fourth.channel.isActive && fifth.channel.isActive)
        #expect(first.counted("shed") == 2)
        try fifth.send(Self.header)
        #expect(fifth.events == ["connect 203.0.113.7:51234"])
    }

    @Test("a header that completes takes its connection out of the budget: the next over it sheds the oldest still waiting")
    func servedConnectionsLeaveTheBudget() throws {
        let served = try Stage(from: Self.proxy(port: 40000), maxPendingHeadersPerIP: 2)
        let waiting = try Stage(from: Self.proxy(port: 40001), sharing: served)
        try served.send(Self.header)
        #expect(served.events == ["connect 203.0.113.7:51234"])
        #expect(served.pending.count(from: "127.0.0.1") == 1, "only the one still waiting")
        let third = try Stage(from: Self.proxy(port: 40002), sharing: served)
        served.loop.run()
        waiting.loop.run()
        #expect(served.channel.isActive && waiting.channel.isActive && third.channel.isActive, "two waiting: within the budget")
        let fourth = try Stage(from: Self.proxy(port: 40003), sharing: served)
        served.loop.run()
        waiting.loop.run()
        #expect(served.channel.isActive, "a served connection is never shed")
        #expect(!waiting.channel.isActive, "the oldest still waiting is")
        #expect(third.channel.isActive && fourth.channel.isActive)
        #expect(served.counted("proxied") == 1 && served.counted("shed") == 1)
        try served.send("still here")
        #expect(served.events.last == "data still here")
    }

    @Test("a header that completes after its connection was picked to be shed, before its loop got to it, is served, not shed")
    func headerBeatsTheShed() throws {
        let first = try Stage(from: Self.proxy(port: 40000), maxPendingHeadersPerIP: 1)
        let second = try Stage(from: Self.proxy(port: 40001), sharing: first)
        #expect(second.channel.isActive)
        try first.send(Self.header)
        first.loop.run()
        #expect(first.channel.isActive)
        #expect(first.events == ["connect 203.0.113.7:51234"])
        #expect(first.counted("proxied") == 1 && first.counted("shed") == 0)
        #expect(!first.logs.contains("shed the oldest"))
    }

    @Test("past proxy_max_pending_headers (2) the oldest waiting connection of any address is shed, counted as shed.global")
    func globalBudget() throws {
        let first = try Stage(from: try SocketAddress(ipAddress: "127.0.0.1", port: 40000), maxPendingHeaders: 2)
        let second = try Stage(from: try SocketAddress(ipAddress: "::1", port: 40001), sharing: first)
        #expect(first.channel.isActive && second.channel.isActive)
        let third = try Stage(from: try SocketAddress(ipAddress: "127.0.0.1", port: 40002), sharing: first)
        first.loop.run()
        second.loop.run()
        #expect(!first.channel.isActive)
        #expect(second.channel.isActive && third.channel.isActive)
        #expect(first.counted("shed") == 1 && first.counted("shed.global") == 1 && first.counted("shed.perAddress") == 0)
        #expect(first.logs.contains(
            "warning shed the oldest connection waiting for its PROXY header, to admit a new one "
                + "(proxy_max_pending_headers is 2) peer=127.0.0.1:40000 port=15222 received_bytes=0"))
        let fourth = try Stage(from: try SocketAddress(ipAddress: "127.0.0.1", port: 40003), sharing: first)
        second.loop.run()
        #expect(!second.channel.isActive, "the oldest overall now, though its address has only one waiting")
        #expect(third.channel.isActive && fourth.channel.isActive)
        #expect(first.counted("shed.global") == 2)
        // Every address's sheds together: one line, then one summary (a flood from many
        // addresses must not write a line per address).
        let sheds = { first.logs.all.filter { $0.contains("(proxy_max_pending_headers is 2)") } }
        #expect(sheds().count == 1)
        first.runtime.events.flush()
        #expect(sheds().last == "warning shed the oldest connection waiting for its PROXY header, to admit a new one "
            + "(proxy_max_pending_headers is 2) (repeated 1 more times) peer=any address")
    }

    @Test("sheds from one address are logged once, then summarised with their count")
    func shedsAreSummarised() throws {
        let first = try Stage(from: Self.proxy(port: 40000), maxPendingHeadersPerIP: 1)
        var stages = [first]
        for port in 40001 ... 40003 {
            stages.append(try Stage(from: Self.proxy(port: port), sharing: first))
            for stage in stages { stage.loop.run() }
        }
        #expect(stages.map(\.channel.isActive) == [false, false, false, true])
        #expect(first.counted("shed") == 3 && first.counted("shed.perAddress") == 3)
        let sheds = { first.logs.all.filter { $0.contains("shed the oldest connection") } }
        #expect(sheds() == [
            "warning shed the oldest connection waiting for its PROXY header from this address, to admit a new one "
                + "(max_pending_headers_per_ip is 1) peer=127.0.0.1:40000 port=15222 received_bytes=0",
        ])
        first.runtime.events.flush()
        #expect(sheds().last == "warning shed the oldest connection waiting for its PROXY header from this address, to admit a new one "
            + "(max_pending_headers_per_ip is 1) (repeated 2 more times) peer=127.0.0.1")
    }

    @Test("a port without a mapping is closed after its header, with a warning")
    func unmappedPort() throws {
        let stage = try Stage(mappings: [:])
        try stage.send(Self.header + "hello")
        #expect(!stage.channel.isActive)
        #expect(stage.outcomes == [.noService])
        #expect(stage.events.isEmpty)
        #expect(stage.holdsNothing)
        #expect(stage.logs.contains("warning port 15222 has no entry in proxy_port_mappings; closing after the header"))
    }

    @Test("a mapping to a service that no module provides is closed after the header, with an error")
    func missingService() throws {
        let stage = try Stage(service: nil)
        try stage.send(Self.header)
        #expect(!stage.channel.isActive)
        #expect(stage.outcomes == [.noService])
        #expect(stage.holdsNothing)
        #expect(stage.logs.contains("error proxy_port_mappings sends port 15222 to service 'svc', which no loaded module provides"))
    }

    @Test("a Lua service whose connection was accepted on another loop is refused rather than served across threads")
    func luaServiceOnAnotherLoop() throws {
        let stage = try Stage(
            service: { NetService(name: "svc", handling: .listener($0, .luaLoop), module: "test") },
            luaLoop: EmbeddedEventLoop())
        try stage.send(Self.header)
        #expect(!stage.channel.isActive)
        #expect(stage.outcomes == [.noService])
        #expect(stage.events.isEmpty)
        #expect(stage.logs.contains("error service 'svc' now runs in Lua but this connection was accepted on another thread"))
    }

    @Test("a service whose stages cannot be added (TLS without a certificate) is counted as hand_over_failed")
    func handOverFails() throws {
        let stage = try Stage(
            service: { NetService(name: "svc", handling: .listener($0, .anyLoop), module: "test", encryption: .directTLS) })
        try stage.send(Self.header)
        #expect(!stage.channel.isActive)
        #expect(stage.outcomes == [.handOverFailed])
        #expect(stage.events.isEmpty)
        #expect(stage.holdsNothing)
        #expect(stage.logs.contains("error could not hand the connection to service 'svc': service 'svc' uses TLS"))
    }

    @Test("after a refusal the stage asks for one close, and the bytes that still arrive are dropped: not parsed, not passed on, not counted")
    func bytesAfterRefusal() throws {
        let stage = try Stage(holdingClose: true)
        try stage.send("GET / HTTP/1.1\r\n")
        #expect(stage.holdClose?.requests == 1)
        #expect(stage.channel.isActive, "held open by the test")
        try stage.send(Self.header + "hello")
        try stage.send("more")
        #expect(stage.events.isEmpty)
        #expect(try stage.passedOn() == nil)
        #expect(stage.outcomes == [.invalid])
        #expect(stage.holdClose?.requests == 1)
        #expect(stage.stageIsInPipeline, "a refusing stage stays until the channel closes; only a hand-over removes it")
        stage.loop.advanceTime(by: .seconds(10))
        #expect(stage.outcomes == [.invalid], "no time limit is left to fire")
    }

    // MARK: Hang-ups, errors, removal

    @Test("a peer that closes mid-header is counted as closed_early, and its pending slot is given back")
    func closedEarly() throws {
        let first = try Stage(maxPendingHeadersPerIP: 2)
        try first.send("PROXY TCP4 ")
        _ = try first.channel.close().wait()
        #expect(first.outcomes == [.closedEarly])
        #expect(first.holdsNothing)
        #expect(first.logs.contains(
            "info the peer closed the connection before the PROXY header was complete peer=127.0.0.1:40000 port=15222 received_bytes=11"))
        let second = try Stage(from: Self.proxy(port: 40001), sharing: first)
        let third = try Stage(from: Self.proxy(port: 40002), sharing: first)
        second.loop.run()
        #expect(second.channel.isActive && third.channel.isActive, "the closed one's slot was not given back: the budget of 2 counted it")
    }

    @Test("a connection whose peer was gone before the accept completed is closed and counted as closed_early")
    func peerGoneBeforeAccept() throws {
        let stage = try Stage(from: nil)
        #expect(stage.outcomes == [.closedEarly])
        #expect(!stage.channel.isActive)
        #expect(stage.holdsNothing)
    }

    @Test("an error while waiting for the header closes the connection (counted as closed_early) and goes no further")
    func errorWhileWaiting() throws {
        let stage = try Stage()
        try stage.send("PROXY TCP4 ")
        stage.channel.pipeline.fireErrorCaught(ChannelError.ioOnClosedChannel)
        #expect(!stage.channel.isActive)
        #expect(stage.outcomes == [.closedEarly])
        #expect(stage.holdsNothing)
        #expect(throws: Never.self) { try stage.channel.throwIfErrorCaught() }
    }

    @Test("an error after a refusal is passed on to the stages after this one")
    func errorAfterRefusal() throws {
        let stage = try Stage(holdingClose: true)
        try stage.send("GET / HTTP/1.1\r\n")
        stage.channel.pipeline.fireErrorCaught(ChannelError.ioOnClosedChannel)
        #expect(throws: ChannelError.self) { try stage.channel.throwIfErrorCaught() }
        #expect(stage.holdClose?.requests == 1)
    }

    @Test("a stage taken out of the pipeline mid-header gives back its slot and its time limit")
    func removedMidHeader() throws {
        let stage = try Stage()
        try stage.send("PROXY TCP4 ")
        try stage.channel.pipeline.syncOperations.removeHandler(stage.stage).wait()
        #expect(stage.holdsNothing)
        stage.loop.advanceTime(by: .seconds(10))
        #expect(stage.channel.isActive)
        #expect(stage.outcomes.isEmpty)
    }
}

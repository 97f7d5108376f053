import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NetHostTestSupport
import Testing
@testable import NetHostConfig
@testable import NetHostLogging
@testable import NetHostCore

/// At `max_connections`, when no connection waits for a PROXY header, the
/// established connection that has read nothing for longest makes room for the
/// new one, if it has been idle `shed_idle_after` or more (issue 14). Virtual time
/// on an `EmbeddedEventLoop`; the connections are admitted and then given their
/// `ConnectionHandler`, in the order `ConnectionSetup` uses. (On real sockets:
/// `IdleSheddingSocketTests`.)
@Suite("Idle connections shed at max_connections")
struct IdleSheddingTests {
    /// Records why each connection ended, by its client port.
    final class Recorder: ConnectionListener {
        private let ends = NIOLockedValueBox<[String]>([])
        func onIncoming(_ connection: Connection, data: ByteBuffer) throws {}
        func onDisconnect(_ connection: Connection, reason: String?) {
            ends.withLockedValue { $0.append("\(connection.addresses.clientPort): \(reason ?? "nil")") }
        }
        var disconnects: [String] { ends.withLockedValue { $0 } }
    }

    /// A limiter of `maximum` connections with its tracker, and a service, on one loop.
    final class Bench {
        let loop = EmbeddedEventLoop()
        let logs = LogCapture()
        let recorder = Recorder()
        let tracker = ConnectionTracker()
        let shedding = LoadShedding()
        let limiter: ConnectionLimiter
        private var channels: [EmbeddedChannel] = []

        init(maximum: Int, shedIdleAfter: TimeAmount) {
            limiter = ConnectionLimiter(
                maximum: maximum, shedding: shedding, idleConnections: tracker, shedIdleAfter: shedIdleAfter,
                logger: Logger(label: "limits", factory: logs.handler(label:))
            )
        }

        deinit {
            for channel in channels where channel.isActive { _ = try? channel.close().wait() }
            try? loop.syncShutdownGracefully()
        }

        /// A new connection from 198.51.100.7:`port`, as the server's accept path
        /// treats it: admitted or refused first, then served. Nil if refused.
        func connect(port: Int) throws -> EmbeddedChannel? {
            let channel = EmbeddedChannel(loop: loop)
            channels.append(channel)
            try channel.connect(to: SocketAddress(ipAddress: "198.51.100.7", port: port)).wait()
            guard limiter.admit(channel) else { return nil }
            try channel.pipeline.syncOperations.addHandler(ConnectionHandler(
                serviceName: "chat", listener: recorder, settings: NetworkSettings(),
                logger: Logger(label: "conn", factory: logs.handler(label:)), tracker: tracker
            ))
            return channel
        }

        func advance(seconds: Double) { loop.advanceTime(by: .nanoseconds(Int64(seconds * 1e9))) }
    }

    static let reason = "shed: server at max_connections"

    @Test("at max_connections the connection idle longest (not the oldest) is closed to admit the new one, counted, logged and told why")
    func shedsIdleLongest() throws {
        let bench = Bench(maximum: 3, shedIdleAfter: .seconds(60))
        let oldest = try #require(try bench.connect(port: 1001))
        bench.advance(seconds: 1)
        let idlest = try #require(try bench.connect(port: 1002))
        bench.advance(seconds: 1)
        let third = try #require(try bench.connect(port: 1003))
        bench.advance(seconds: 8)
        try oldest.writeInbound(ByteBuffer(string: "ping"))  // t = 10 s: the oldest is now the least idle
        bench.advance(seconds: 60)  // idle: oldest 60 s, idlest 69 s, third 68 s

        let newcomer = try #require(try bench.connect(port: 1004), "admitted in the idle one's place")
        #expect(!idlest.isActive)
        #expect(oldest.isActive && third.isActive && newcomer.isActive)
        #expect(bench.recorder.disconnects == ["1002: \(Self.reason)"])
        #expect(bench.limiter.shedIdleConnections == 1)
        let counters = ServerCounters(
            handshakeLimits: TLSHandshakeLimits(failures: RepeatedEventLog(logger: Logger(label: "test")), logger: Logger(label: "test")),
            sendBuffers: SendBufferBudget(), log: .shared, limiter: bench.limiter
        )
        #expect(counters.summary.first { $0.key == "shed.idle" }?.count == 1, "SIGUSR1's line and metrics read it there")
        #expect(bench.logs.contains(
            "warning shed the connection idle longest, to admit a new one (max_connections is 3, shed_idle_after is 60.0 s) "
                + "conn="
        ))
        #expect(bench.logs.contains("idle_seconds=69 peer=198.51.100.7:1002 service=chat"))
        bench.loop.run()
        #expect(bench.limiter.openConnections == 3)

        // The next one in line is the third (68 s), then the oldest (exactly 60 s).
        #expect(try bench.connect(port: 1005) != nil)
        #expect(!third.isActive)
        #expect(try bench.connect(port: 1006) != nil)
        #expect(!oldest.isActive)
        #expect(bench.recorder.disconnects == ["1002: \(Self.reason)", "1003: \(Self.reason)", "1001: \(Self.reason)"])
        #expect(bench.limiter.shedIdleConnections == 3)
        // One line, then the repeats wait for the ten-second summary.
        #expect(bench.logs.all.filter { $0.contains("shed the connection idle longest") }.count == 1)
        bench.limiter.flushSummaries()
        #expect(bench.logs.contains("shed_idle_after is 60.0 s) (repeated 2 more times) peer=any address"))
    }

    @Test("a connection idle less than shed_idle_after is not shed: the new one is refused as before; at shed_idle_after it is shed")
    func notIdleLongEnough() throws {
        let bench = Bench(maximum: 2, shedIdleAfter: .seconds(60))
        let first = try #require(try bench.connect(port: 2001))
        let second = try #require(try bench.connect(port: 2002))
        bench.advance(seconds: 59.999)
        #expect(try bench.connect(port: 2003) == nil)
        #expect(first.isActive && second.isActive)
        #expect(bench.recorder.disconnects.isEmpty)
        #expect(bench.limiter.shedIdleConnections == 0)
        #expect(bench.logs.contains("max_connections (2) reached: refused a connection"))

        bench.advance(seconds: 0.001)
        #expect(try bench.connect(port: 2004) != nil)
        #expect(!first.isActive && second.isActive)
        #expect(bench.recorder.disconnects == ["2001: \(Self.reason)"])
    }

    @Test("bytes from the peer make a connection busy again: it goes to the back of the line")
    func readMovesToTheBack() throws {
        let bench = Bench(maximum: 2, shedIdleAfter: .seconds(60))
        let first = try #require(try bench.connect(port: 3001))
        let second = try #require(try bench.connect(port: 3002))
        bench.advance(seconds: 100)
        try first.writeInbound(ByteBuffer(string: "still here"))
        #expect(try bench.connect(port: 3003) != nil)
        #expect(first.isActive && !second.isActive)
        // The one left read 0 s ago, the new one has not read yet: neither is idle enough.
        #expect(try bench.connect(port: 3004) == nil)
    }

    @Test("shed_idle_after = 0 never sheds: the new one is refused however idle the others are")
    func zeroDisables() throws {
        let bench = Bench(maximum: 1, shedIdleAfter: .zero)
        let held = try #require(try bench.connect(port: 4001))
        bench.advance(seconds: 600)  // under read_timeout (840 s), which would close it itself
        #expect(try bench.connect(port: 4002) == nil)
        #expect(held.isActive)
        #expect(bench.limiter.shedIdleConnections == 0)

        bench.limiter.shedIdleAfter = .seconds(60)  // as a reload sets it
        #expect(try bench.connect(port: 4003) != nil)
        #expect(!held.isActive)
    }

    @Test("a connection waiting for its PROXY header is shed first; an idle one only when none is")
    func headerWaitersFirst() throws {
        let bench = Bench(maximum: 1, shedIdleAfter: .seconds(60))
        let waiting = NIOLockedValueBox(1)
        let registration = bench.shedding.add { _ in
            waiting.withLockedValue { count in
                guard count > 0 else { return false }
                count -= 1
                return true
            }
        }
        defer { bench.shedding.remove(registration) }
        let held = try #require(try bench.connect(port: 5001))
        bench.advance(seconds: 120)
        #expect(try bench.connect(port: 5002) != nil)
        #expect(held.isActive, "the header waiter made room")
        #expect(bench.limiter.shedIdleConnections == 0)
        #expect(try bench.connect(port: 5003) != nil)
        #expect(!held.isActive)
        #expect(bench.limiter.shedIdleConnections == 1)
    }

    @Test("shed_idle_after is read from network_settings: 60 s by default, 0 allowed, negatives and text refused")
    func readFromNetworkSettings() throws {
        #expect(NetworkSettings().shedIdleAfterAmount == .seconds(60))
        var problems: [NetworkSettings.Problem] = []
        let off = NetworkSettings(from: ConfigTable(map: [.string("shed_idle_after"): .integer(0)]), problems: &problems)
        #expect(off.shedIdleAfterAmount == .zero)
        let half = NetworkSettings(from: ConfigTable(map: [.string("shed_idle_after"): .number(0.5)]), problems: &problems)
        #expect(half.shedIdleAfterAmount == .milliseconds(500))
        #expect(problems.isEmpty)
        let negative = NetworkSettings(from: ConfigTable(map: [.string("shed_idle_after"): .integer(-1)]), problems: &problems)
        _ = NetworkSettings(from: ConfigTable(map: [.string("shed_idle_after"): .string("soon")]), problems: &problems)
        #expect(negative.shedIdleAfter == 60)
        #expect(problems.map(\.description) == [
            "network_settings.shed_idle_after: expected 0 (never shed) or a positive, finite number of seconds, got -1.0",
            "network_settings.shed_idle_after: expected 0 (never shed) or a positive, finite number of seconds, got string",
        ])
    }
}

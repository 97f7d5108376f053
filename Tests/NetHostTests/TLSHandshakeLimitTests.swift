import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NIOSSL
import NetHostTestSupport
import Testing
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLogging

/// Issue 14: a TLS client that never finishes its handshake is closed at
/// `ssl_handshake_timeout` (not at read_timeout, 840 s), and past
/// `ssl_max_handshakes_per_second` a new TLS connection is closed before its
/// handshake starts. Virtual time, on `EmbeddedChannel`s set up by the same
/// `PipelineContext.addServiceStages` the server uses (direct TLS) or by
/// `Connection.startTLS` (STARTTLS); one test on real sockets. (After a PROXY
/// header: `ProxyTLSHandshakeTimeoutTests`.)
@Suite("TLS handshake timeout and rate limit")
struct TLSHandshakeLimitTests {
    /// What a service saw: its callbacks, and the reasons its connections ended.
    final class Recorder: ConnectionListener {
        let events = NIOLockedValueBox<[String]>([])
        func onConnect(_ connection: Connection) throws { record("connect") }
        func onIncoming(_ connection: Connection, data: ByteBuffer) throws {
            // A STARTTLS service: the command upgrades the connection.
            if String(buffer: data) == "STARTTLS" { try connection.startTLS() }
        }
        func onStatus(_ connection: Connection, status: String) throws { record("status \(status)") }
        func onDisconnect(_ connection: Connection, reason: String?) { record("disconnect \(reason ?? "nil")") }
        private func record(_ event: String) { events.withLockedValue { $0.append(event) } }
        var all: [String] { events.withLockedValue { $0 } }
    }

    /// A direct-TLS service `secure` and a plain one `plain` (STARTTLS), with the
    /// TLS contexts read from `options` as the server reads them, on one
    /// `EmbeddedEventLoop`. Closes its channels when it goes.
    final class Bench {
        let loop = EmbeddedEventLoop()
        let logs = LogCapture()
        let recorder = Recorder()
        let directory: String
        let tls: TLSContexts
        let context: PipelineContext
        let secure: NetService
        private var channels: [EmbeddedChannel] = []
        private let closed = NIOLockedValueBox<Set<ObjectIdentifier>>([])

        init(_ options: [String: ConfigValue]) throws {
            directory = NSTemporaryDirectory() + "nethost-tls-limits-" + UUID().uuidString
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let certificate = try TestCertificate(in: directory)
            let logger = Logger(label: "tls", factory: logs.handler(label:))
            secure = NetService(name: "secure", handling: .listener(recorder, .anyLoop), module: "test", encryption: .directTLS)
            let services = ServiceRegistry()
            try services.add(secure)
            tls = TLSContexts(logger: logger)
            let messages = try tls.load(
                options: FixedOptions(global: options.merging(["ssl": TLSPolicyTests.ssl(certificate)]) { $1 }),
                services: [secure], baseDirectory: directory, reloading: false, now: Int(Date().timeIntervalSince1970)
            )
            let problems = messages.filter { $0.level >= .warning }
            guard problems.isEmpty else { throw FixtureError("loading the TLS settings: \(problems)") }
            context = PipelineContext(
                services: services, settings: LiveValue(NetworkSettings()), logger: logger, tracker: ConnectionTracker(),
                luaLoop: loop, tls: tls
            )
        }

        deinit {
            // A TLS stage answers a close with close_notify and waits for the peer's,
            // up to a time limit on the loop's clock: let it pass, then finish.
            for channel in channels {
                channel.close(promise: nil)
            }
            loop.advanceTime(by: .seconds(60))
            for channel in channels {
                _ = try? channel.finish(acceptAlreadyClosed: true)
            }
            try? loop.syncShutdownGracefully()
            try? FileManager.default.removeItem(atPath: directory)
        }

        func track(_ channel: EmbeddedChannel) {
            channels.append(channel)
            let id = ObjectIdentifier(channel)
            channel.closeFuture.whenComplete { [closed] _ in closed.withLockedValue { _ = $0.insert(id) } }
        }

        /// A connection accepted on `secure`'s port: the server adds the service's
        /// stages before the channel is active, then it becomes active (unless the
        /// stages closed it).
        func accept(from ip: String = "198.51.100.7") throws -> EmbeddedChannel {
            let channel = EmbeddedChannel(loop: loop)
            track(channel)
            try context.addServiceStages(to: channel.pipeline.syncOperations, service: secure, listener: recorder, addresses: nil, origin: nil)
            if !isClosed(channel) {
                try channel.connect(to: SocketAddress(ipAddress: ip, port: 40000)).wait()
            }
            return channel
        }

        /// A plain connection whose client sends STARTTLS: the service (`recorder`
        /// unless another is given) upgrades it.
        func startTLS(
            from ip: String = "198.51.100.8", listener: (any ConnectionListener)? = nil, settings: NetworkSettings = NetworkSettings()
        ) throws -> EmbeddedChannel {
            let channel = EmbeddedChannel(loop: loop)
            track(channel)
            try channel.pipeline.syncOperations.addHandler(ConnectionHandler(
                serviceName: "plain", listener: listener ?? recorder, settings: settings,
                logger: Logger(label: "tls", factory: logs.handler(label:)), tls: tls.shared
            ))
            try channel.connect(to: SocketAddress(ipAddress: ip, port: 40001)).wait()
            try channel.writeInbound(ByteBuffer(string: "STARTTLS"))
            return channel
        }

        /// Whether the channel has closed (an `EmbeddedChannel` completes its close on the loop's next run).
        func isClosed(_ channel: EmbeddedChannel) -> Bool {
            loop.run()
            return closed.withLockedValue { $0.contains(ObjectIdentifier(channel)) }
        }

        /// Whether the channel has a TLS stage, that is, its handshake was let start.
        func hasTLSStage(_ channel: EmbeddedChannel) -> Bool {
            (try? channel.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self)) != nil
        }

        /// A client that completes the handshake with `server`, bytes carried by hand.
        func completeHandshake(with server: EmbeddedChannel) throws -> EmbeddedChannel {
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.certificateVerification = .none
            let client = EmbeddedChannel(loop: loop)
            track(client)
            try client.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: NIOSSLContext(configuration: configuration), serverHostname: nil))
            try client.connect(to: SocketAddress(ipAddress: "192.0.2.1", port: 443)).wait()
            var moved = true
            while moved {
                moved = false
                loop.run()
                while let bytes = try client.readOutbound(as: ByteBuffer.self) {
                    try server.writeInbound(bytes)
                    moved = true
                }
                loop.run()
                while let bytes = try server.readOutbound(as: ByteBuffer.self) {
                    try client.writeInbound(bytes)
                    moved = true
                }
            }
            return client
        }

        func advance(by amount: TimeAmount) { loop.advanceTime(by: amount) }
        /// Lines NetHost logged at info and above (not the connections' own debug lines) that contain `text`.
        func lines(containing text: String) -> [String] { logs.all.filter { !$0.hasPrefix("debug ") && $0.contains(text) } }
        var events: [String] { recorder.all }
    }

    static let timedOut = "TLS handshake timed out: not finished within ssl_handshake_timeout (5 s)"

    // MARK: Timeout

    @Test(
        "a direct-TLS client that never finishes its handshake is closed at ssl_handshake_timeout, not a millisecond before",
        arguments: [
            ["ssl_handshake_timeout": ConfigValue.integer(5)],
            ["network_settings": .table(ConfigTable(map: [.string("ssl_handshake_timeout"): .integer(5)]))],
            ["network_settings": .table(ConfigTable(map: [.string("handshake_timeout"): .integer(5)]))],
        ]
    )
    func silentClientIsClosedAtTheTimeout(_ options: [String: ConfigValue]) throws {
        let bench = try Bench(options)
        let silent = try bench.accept()
        #expect(bench.hasTLSStage(silent))
        bench.advance(by: .milliseconds(4999))
        #expect(silent.isActive)
        #expect(!bench.isClosed(silent))
        bench.advance(by: .milliseconds(1))
        #expect(bench.isClosed(silent))
        #expect(bench.events == ["disconnect \(Self.timedOut)"], "onconnect never ran; ondisconnect has the reason")
        let logged = bench.lines(containing: Self.timedOut)
        #expect(logged.count == 1 && logged.first?.hasPrefix("info ") == true && logged.first?.contains("peer=198.51.100.7") == true,
                "\(bench.logs.all)")
        #expect(bench.tls.handshakeLimits.timedOut == 1)
    }

    @Test("a finished handshake cancels the timer: at the timeout the silent client is closed and the one that finished is not")
    func finishedHandshakeCancelsTheTimer() throws {
        let bench = try Bench(["ssl_handshake_timeout": .integer(5)])
        let finished = try bench.accept()
        let silent = try bench.accept()
        _ = try bench.completeHandshake(with: finished)
        #expect(bench.events == ["status ssl-handshake-complete", "connect"])
        #expect((try? finished.pipeline.syncOperations.handler(type: TLSHandshakeTimeoutHandler.self)) == nil,
                "the timeout stage leaves once the handshake is done")
        #expect((try? silent.pipeline.syncOperations.handler(type: TLSHandshakeTimeoutHandler.self)) != nil)
        bench.advance(by: .seconds(5))
        #expect(bench.isClosed(silent))
        #expect(!bench.isClosed(finished) && finished.isActive)
        // Long after, short of read_timeout (840 s): the finished one is still served.
        bench.advance(by: .seconds(300))
        #expect(!bench.isClosed(finished) && finished.isActive)
        #expect(bench.tls.handshakeLimits.timedOut == 1)
    }

    @Test("repeated timeouts from one client are one line at once, then one summary with the count")
    func repeatedTimeoutsAreSummarised() throws {
        let bench = try Bench(["ssl_handshake_timeout": .integer(5)])
        for _ in 1...3 { _ = try bench.accept() }
        bench.advance(by: .seconds(5))
        #expect(bench.lines(containing: Self.timedOut).count == 1, "\(bench.logs.all)")
        bench.tls.flushSummaries()
        #expect(bench.lines(containing: "\(Self.timedOut) (repeated 2 more times)").count == 1, "\(bench.logs.all)")
    }

    @Test("STARTTLS: a client that never sends its hello after STARTTLS is closed at ssl_handshake_timeout")
    func startTLSTimesOut() throws {
        let bench = try Bench(["ssl_handshake_timeout": .integer(5)])
        let upgraded = try bench.startTLS()
        #expect(bench.hasTLSStage(upgraded))
        bench.advance(by: .milliseconds(4999))
        #expect(!bench.isClosed(upgraded))
        bench.advance(by: .milliseconds(1))
        #expect(bench.isClosed(upgraded))
        #expect(bench.events == ["connect", "disconnect \(Self.timedOut)"])
        #expect(bench.lines(containing: Self.timedOut).first?.contains("peer=198.51.100.8") == true, "\(bench.logs.all)")
    }

    @Test("the default ssl_handshake_timeout is 60 s, as Prosody's and nginx's")
    func defaultTimeout() throws {
        let bench = try Bench([:])
        let silent = try bench.accept()
        bench.advance(by: .milliseconds(59_999))
        #expect(!bench.isClosed(silent))
        bench.advance(by: .milliseconds(1))
        #expect(bench.isClosed(silent))
    }

    // MARK: Rate

    @Test("ssl_max_handshakes_per_second = 3: three handshakes start at once, the fourth connection is closed before its handshake; a second later three more start, then one per third of a second")
    func rateLimit() throws {
        let bench = try Bench(["ssl_max_handshakes_per_second": .integer(3)])
        let first = try (1...3).map { _ in try bench.accept() }
        #expect(first.allSatisfy { bench.hasTLSStage($0) && !bench.isClosed($0) })
        let refused = try bench.accept(from: "198.51.100.9")
        #expect(bench.isClosed(refused))
        #expect(!bench.hasTLSStage(refused), "no TLS stage, so no crypto spent")
        #expect(bench.events.isEmpty, "the service never heard of the refused connection")
        bench.advance(by: .seconds(1))
        let again = try (1...3).map { _ in try bench.accept() }
        #expect(again.allSatisfy { bench.hasTLSStage($0) && !bench.isClosed($0) })
        #expect(bench.isClosed(try bench.accept()))
        // The budget comes back continuously: one handshake a third of a second, not before.
        bench.advance(by: .milliseconds(333))
        #expect(bench.isClosed(try bench.accept()))
        bench.advance(by: .milliseconds(1))
        #expect(!bench.isClosed(try bench.accept()))
        #expect(bench.isClosed(try bench.accept()))
        #expect(bench.tls.handshakeLimits.refused == 4)
        let refusal = "ssl_max_handshakes_per_second (3) reached: new TLS connections are closed before their handshake"
        #expect(bench.lines(containing: refusal).count == 1, "one line, not one per connection: \(bench.logs.all)")
        bench.tls.flushSummaries()
        #expect(bench.lines(containing: "\(refusal) (repeated 3 more times)").count == 1, "\(bench.logs.all)")
    }

    @Test("STARTTLS past the rate limit: the connection is closed, and ondisconnect says why")
    func startTLSRateLimit() throws {
        let bench = try Bench(["ssl_max_handshakes_per_second": .integer(1)])
        let admitted = try bench.startTLS()
        let refused = try bench.startTLS()
        #expect(bench.hasTLSStage(admitted) && !bench.isClosed(admitted))
        #expect(bench.isClosed(refused) && !bench.hasTLSStage(refused))
        #expect(bench.events == ["connect", "connect", "disconnect TLS refused: ssl_max_handshakes_per_second (1) reached"])
    }

    // MARK: Options

    @Test(
        "a value that cannot be used is warned about and the default kept",
        arguments: [
            ("ssl_handshake_timeout", ConfigValue.integer(0), "ssl_handshake_timeout: expected a number of seconds above 0, got 0; 60 is used"),
            ("ssl_handshake_timeout", .string("soon"), "ssl_handshake_timeout: expected a number of seconds above 0, got string; 60 is used"),
            ("ssl_max_handshakes_per_second", .integer(-1),
             "ssl_max_handshakes_per_second: expected a whole number from 0 (no limit) to 1000000, got -1; 1000 is used"),
            ("ssl_max_handshakes_per_second", .number(2.5),
             "ssl_max_handshakes_per_second: expected a whole number from 0 (no limit) to 1000000, got 2.5; 1000 is used"),
        ]
    )
    func unusableValues(_ option: String, _ value: ConfigValue, _ warning: String) throws {
        let tls = TLSContexts(logger: Logger(label: "tls") { _ in SwiftLogNoOpLogHandler() })
        let messages = try tls.load(options: FixedOptions(global: [option: value]), services: [], baseDirectory: "/", reloading: false, now: 0)
        #expect(messages.filter { $0.level >= .warning }.map(\.description) == [warning])
        #expect(tls.handshakeLimits.timeout == .seconds(60))
        #expect(tls.handshakeLimits.maximumPerSecond == 1000)
    }

    @Test("the global ssl_handshake_timeout wins over network_settings', and a disagreement is warned about; a reload changes both limits")
    func globalOptionWinsAndReloadApplies() throws {
        let tls = TLSContexts(logger: Logger(label: "tls") { _ in SwiftLogNoOpLogHandler() })
        let networkSettings = ConfigValue.table(ConfigTable(map: [.string("ssl_handshake_timeout"): .integer(20)]))
        let messages = try tls.load(
            options: FixedOptions(global: ["ssl_handshake_timeout": .number(2.5), "network_settings": networkSettings]),
            services: [], baseDirectory: "/", reloading: false, now: 0
        )
        #expect(messages.map(\.description) == [
            "ssl_handshake_timeout = 2.5 and network_settings.ssl_handshake_timeout = 20 disagree; 2.5 is used",
        ])
        #expect(tls.handshakeLimits.timeout == .milliseconds(2500))
        try tls.load(
            options: FixedOptions(global: ["network_settings": networkSettings, "ssl_max_handshakes_per_second": .integer(0)]),
            services: [], baseDirectory: "/", reloading: true, now: 0
        )
        #expect(tls.handshakeLimits.timeout == .seconds(20))
        #expect(tls.handshakeLimits.maximumPerSecond == 0)
    }

    // MARK: Real sockets

    @Test("real sockets: a client that connects to a direct-TLS port and sends nothing is closed at ssl_handshake_timeout = 1")
    func silentClientOnARealSocket() async throws {
        let fixture = try HostFixture(modules: ["svc": TLSPolicyTests.services])
        let certificate = try TestCertificate(in: fixture.directory)
        try await fixture.start(options: [
            "modules_enabled": .strings("svc"), "secure_ports": .list(.integer(0)), "ssl": TLSPolicyTests.ssl(certificate),
            "ssl_handshake_timeout": .integer(1),
        ])
        let client = try TestClient(connectingTo: "127.0.0.1", port: try fixture.port(of: "secure"))
        // Generous: the point is that it comes, long before read_timeout (840 s).
        #expect(try client.waitForPeerClose(timeout: .seconds(20)))
        client.close()
        #expect(fixture.eventually { !fixture.logs.all.filter { $0.contains("ondisconnect: TLS handshake timed out") }.isEmpty },
                "\(fixture.logs.all)")
        await fixture.stop()
    }
}

import Foundation
import Logging
import NIOCore
import NetHostTestSupport
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLogging

/// Issue 14's outcomes that were logged but not counted in the statistics: TLS
/// handshakes timed out or refused by the rate limit, connections shed at
/// `max_send_buffer_total`, log lines dropped. Each is driven, then read where a
/// metrics exporter reads it (`ServerCounters`) and in the statistics line
/// (`NetHostServer.logStatistics`, SIGUSR1).
@Suite("The host's own counters")
struct ServerCountersTests {
    /// A limiter of its own, for counters read outside a server.
    static func limiter() -> ConnectionLimiter { ConnectionLimiter(maximum: 1, logger: Logger(label: "test")) }

    /// The pair `key` of `counters`' statistics line.
    static func reported(_ key: String, in counters: ServerCounters) -> Int? {
        counters.summary.first { $0.key == key }?.count
    }

    @Test("a TLS handshake closed at ssl_handshake_timeout is counted as tls.handshakeTimeout")
    func handshakeTimeout() throws {
        let bench = try TLSHandshakeLimitTests.Bench(["ssl_handshake_timeout": .integer(5)])
        let silent = try bench.accept()
        bench.advance(by: .seconds(5))
        #expect(bench.isClosed(silent))
        let counters = ServerCounters(handshakeLimits: bench.tls.handshakeLimits, sendBuffers: SendBufferBudget(), log: .shared, limiter: Self.limiter())
        #expect(counters.tlsHandshakeTimeouts == 1)
        #expect(Self.reported("tls.handshakeTimeout", in: counters) == 1)
        #expect(Self.reported("tls.handshakeRefused", in: counters) == 0)
    }

    @Test("a TLS connection and a STARTTLS refused by ssl_max_handshakes_per_second are counted as tls.handshakeRefused")
    func handshakeRefused() throws {
        let bench = try TLSHandshakeLimitTests.Bench(["ssl_max_handshakes_per_second": .integer(1)])
        #expect(!bench.isClosed(try bench.accept()))
        #expect(bench.isClosed(try bench.accept()))
        #expect(bench.isClosed(try bench.startTLS()))
        let counters = ServerCounters(handshakeLimits: bench.tls.handshakeLimits, sendBuffers: SendBufferBudget(), log: .shared, limiter: Self.limiter())
        #expect(counters.tlsHandshakesRefused == 2)
        #expect(Self.reported("tls.handshakeRefused", in: counters) == 2)
        #expect(Self.reported("tls.handshakeTimeout", in: counters) == 0)
    }

    @Test("a connection closed at max_send_buffer_total is counted as shed.sendBufferTotal")
    func sendBufferTotalShed() throws {
        let fixture = SendBufferTests.Fixture()
        let service = SendBufferTests.Service(loop: fixture.loop)
        let (channel, _) = try fixture.connect(service, settings: fixture.settings { $0.maxSendBufferTotal = 32 * 1024 })
        for _ in 0..<3 {
            try channel.writeInbound(SendBufferTests.chunk(16))
        }
        #expect(!channel.isActive)
        let limits = TLSHandshakeLimits(failures: RepeatedEventLog(logger: Logger(label: "test")), logger: Logger(label: "test"))
        let counters = ServerCounters(handshakeLimits: limits, sendBuffers: fixture.budget, log: .shared, limiter: Self.limiter())
        #expect(counters.sendBufferTotalShed == 1)
        #expect(Self.reported("shed.sendBufferTotal", in: counters) == 1)
    }

    @Test("log lines dropped, because the queue was full or a sink failed, are counted together as log.dropped")
    func logLinesDropped() throws {
        let directory = NSTemporaryDirectory() + "nethost-counters-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let writer = LogWriter(limits: .init(lines: 100, bytes: 200), report: { _ in })
        defer { writer.close() }
        // Two sinks: a file, whose queue bound drops a long line, and /dev/full, where
        // every write fails (ENOSPC).
        let configuration = LoggingConfiguration(sinks: [
            .init(destination: .file(path: directory + "/bounded.log"), levels: .atLeast(.debug)),
            .init(destination: .file(path: "/dev/full"), levels: LogLevels([.error])),
        ])
        let sinks = try OpenSinks(opening: configuration, writer: writer)
        let log = Logger(label: "q") { SinkLogHandler(label: $0, sinks: sinks, metadataProvider: nil) }
        log.info("first")
        #expect(writer.flush(timeout: .seconds(30)))
        log.info("\(String(repeating: "x", count: 300))")
        log.error("to /dev/full")
        #expect(writer.flush(timeout: .seconds(30)))
        let counters = ServerCounters(
            handshakeLimits: TLSHandshakeLimits(failures: RepeatedEventLog(logger: Logger(label: "test")), logger: Logger(label: "test")),
            sendBuffers: SendBufferBudget(), log: writer, limiter: Self.limiter()
        )
        // The long line is dropped for the file (the queue's bytes); the error line is
        // queued for both and fails on /dev/full.
        #expect(writer.droppedLines == 2)
        #expect(counters.logLinesDropped == 2)
        #expect(Self.reported("log.dropped", in: counters) == 2)
    }

    @Test("SIGUSR1's statistics start with one line of the host's own counters, zeros included")
    func statisticsLine() async throws {
        try await HostFixture.running(modules: [:], options: [:]) { host in
            let server = try #require(host.server)
            server.logStatistics()
            let line = try #require(host.logs.all.first { $0.contains("NetHost counters since start") }, "\(host.logs.all)")
            // The budget and the log writer are the process's, which other tests share:
            // their counts are not pinned. The server's TLS limits are its own.
            let expected = /info NetHost counters since start log\.dropped=\d+ shed\.idle=0 shed\.sendBufferTotal=\d+ tls\.handshakeRefused=0 tls\.handshakeTimeout=0/
            #expect(line.wholeMatch(of: expected) != nil, "\(line)")
        }
    }
}

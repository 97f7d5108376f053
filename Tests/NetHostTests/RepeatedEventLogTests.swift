import Logging
import NIOCore
import NIOEmbedded
import NetHostTestSupport
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging

@Suite("Flood-proof logging")
struct RepeatedEventLogTests {
    @Test("identical events from one peer are logged once, then summarised with their count")
    func summarises() {
        let capture = LogCapture()
        let events = RepeatedEventLog(logger: Logger(label: "test", factory: capture.handler(label:)))
        for _ in 0 ..< 50 {
            events.record("refused an untrusted peer", from: "198.51.100.7", level: .warning)
        }
        events.record("refused an untrusted peer", from: "198.51.100.8", level: .warning)
        #expect(capture.all.count == 2)
        #expect(capture.all[0] == "warning refused an untrusted peer peer=198.51.100.7")
        events.flush()
        #expect(capture.all.count == 3)
        #expect(capture.all[2] == "warning refused an untrusted peer (repeated 49 more times) peer=198.51.100.7")
        // After a flush the next one is logged in full again.
        events.record("refused an untrusted peer", from: "198.51.100.7", level: .warning)
        #expect(capture.all.count == 4)
    }

    @Test("past its key limit it folds new peers into one count instead of growing")
    func bounded() {
        let capture = LogCapture()
        let events = RepeatedEventLog(logger: Logger(label: "test", factory: capture.handler(label:)), maximumKeys: 10)
        for index in 0 ..< 100 {
            events.record("bad header", from: "10.0.0.\(index)", level: .info)
        }
        #expect(capture.all.count == 10)
        events.flush()
        #expect(capture.all.last == "info (other events) (repeated 90 more times) peer=many peers")
    }

    @Test("a running server logs the summaries every 10 s of its loop's clock: none at 9.999 s, one per repeated event at 10 s")
    func serverSummarisesEveryTenSeconds() throws {
        let loop = EmbeddedEventLoop()
        let capture = LogCapture()
        let logger = Logger(label: "test", factory: capture.handler(label:))
        let limiter = ConnectionLimiter(maximum: 0, logger: logger)
        let tls = TLSContexts(logger: logger)
        let task = Housekeeping.schedule(on: loop, limiter: limiter, ports: PortManager(group: loop, logger: logger), tls: tls)
        defer { task.cancel() }
        for _ in 0 ..< 3 {
            let channel = EmbeddedChannel(loop: loop)
            try channel.connect(to: SocketAddress(ipAddress: "198.51.100.7", port: 40000)).wait()
            #expect(!limiter.admit(channel))
        }
        for _ in 0 ..< 2 {
            tls.handshakeFailures.record("TLS handshake failed", from: "198.51.100.8", level: .info)
        }
        let summaries = { capture.all.filter { $0.contains("(repeated") } }
        #expect(capture.all.count == 2, "the first of each, in full")

        loop.advanceTime(by: .milliseconds(9_999))
        #expect(summaries().isEmpty)
        loop.advanceTime(by: .milliseconds(1))
        #expect(summaries() == [
            "warning max_connections (0) reached: refused a connection (repeated 2 more times) peer=198.51.100.7",
            "info TLS handshake failed (repeated 1 more times) peer=198.51.100.8",
        ])

        // Counting starts afresh: the next one is logged in full, its repeats summarised 10 s later.
        for _ in 0 ..< 4 {
            tls.handshakeFailures.record("TLS handshake failed", from: "198.51.100.8", level: .info)
        }
        #expect(capture.all.filter { $0 == "info TLS handshake failed peer=198.51.100.8" }.count == 2)
        loop.advanceTime(by: .milliseconds(9_999))
        #expect(summaries().count == 2)
        loop.advanceTime(by: .milliseconds(1))
        #expect(summaries().last == "info TLS handshake failed (repeated 3 more times) peer=198.51.100.8")
        // Nothing repeated since: nothing to summarise.
        loop.advanceTime(by: .seconds(10))
        #expect(summaries().count == 3)
    }
}

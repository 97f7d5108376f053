import Logging
import NetHostTestSupport
import Testing
@testable import NetHost

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
}

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
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A listening socket that cannot accept for want of a resource stops reading for
/// a second of its loop's clock, then tries again (`AcceptPauseHandler`), on
/// virtual time. (That this keeps a real process off the CPU while out of file
/// descriptors: ReliabilityDescriptorTests.)
@Suite("Accept pause")
struct AcceptPauseTests {
    /// A listener's first handler, with its reading switched by the test's record.
    final class Listener {
        let loop = EmbeddedEventLoop()
        let channel: EmbeddedChannel
        let logs = LogCapture()
        let events: RepeatedEventLog
        /// Each time the handler turned reading off (false) or on (true), in order.
        private(set) var reading: [Bool] = []

        init() throws {
            events = RepeatedEventLog(logger: Logger(label: "ports", factory: logs.handler(label:)), sourceLabel: "listener")
            channel = EmbeddedChannel(loop: loop)
            channel.localAddress = try SocketAddress(ipAddress: "127.0.0.1", port: 5222)
            try channel.pipeline.syncOperations.addHandler(
                AcceptPauseHandler(events: events, serviceName: "c2s") { [unowned self] _, on in reading.append(on) })
        }

        /// An open EmbeddedChannel and its pipeline keep each other, and a pending
        /// resume task keeps the handler on the loop: both are let go here.
        deinit {
            _ = try? channel.close().wait()
            try? loop.syncShutdownGracefully()
        }

        func acceptFails(_ errnoCode: Int32) {
            channel.pipeline.fireErrorCaught(IOError(errnoCode: errnoCode, reason: "accept"))
        }
    }

    @Test("out of file descriptors: reading stops at once and resumes after exactly a second", arguments: [EMFILE, ENFILE, ENOBUFS, ENOMEM])
    func pausesForASecond(errnoCode: Int32) throws {
        let listener = try Listener()
        listener.acceptFails(errnoCode)
        #expect(listener.reading == [false])
        listener.loop.advanceTime(by: .milliseconds(999))
        #expect(listener.reading == [false])
        listener.loop.advanceTime(by: .milliseconds(1))
        #expect(listener.reading == [false, true])
        #expect(throws: IOError.self, "the error still goes on down the pipeline") { try listener.channel.throwIfErrorCaught() }
    }

    @Test("failures while paused neither extend the pause nor log again; their count comes in the next summary")
    func failuresWhilePaused() throws {
        let listener = try Listener()
        listener.acceptFails(EMFILE)
        listener.loop.advanceTime(by: .milliseconds(500))
        listener.acceptFails(EMFILE)
        listener.acceptFails(EMFILE)
        listener.loop.advanceTime(by: .milliseconds(500))
        #expect(listener.reading == [false, true], "resumed a second after the first failure")
        let lines = listener.logs.all.filter { $0.contains("out of file descriptors") }
        #expect(lines.count == 1)
        #expect(lines.first?.hasPrefix("error out of file descriptors: the process's limit") == true, "\(lines)")
        #expect(lines.first?.contains("listener=127.0.0.1:5222 service=c2s") == true, "\(lines)")
        listener.events.flush()
        #expect(listener.logs.all.last?.contains("(repeated 2 more times) listener=127.0.0.1:5222") == true)
    }

    @Test("a failure that concerns one connection only (ECONNABORTED) is logged but does not pause")
    func oneConnectionsFailure() throws {
        let listener = try Listener()
        listener.acceptFails(ECONNABORTED)
        listener.loop.advanceTime(by: .seconds(2))
        #expect(listener.reading.isEmpty)
        #expect(listener.logs.contains("error accept failed: "))
    }

    @Test("a listener closed while paused is not switched on again")
    func closedWhilePaused() throws {
        let listener = try Listener()
        listener.acceptFails(EMFILE)
        _ = try listener.channel.close().wait()
        listener.loop.advanceTime(by: .seconds(2))
        #expect(listener.reading == [false])
    }
}

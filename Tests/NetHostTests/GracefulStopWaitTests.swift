import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NetHostTestSupport
import Testing
@testable import NetHostCore

/// The waits of a graceful stop, on virtual time: the load balancer's notice and the
/// drain each last up to their time on the loop's clock, end the moment the last
/// connection has closed, and a second SIGTERM (`hurry()`) ends them at once.
@Suite("Graceful stop: waits on the loop's clock")
struct GracefulStopWaitTests {
    final class Recorder: ConnectionListener {
        func onIncoming(_ connection: Connection, data: ByteBuffer) throws {}
        func onDisconnect(_ connection: Connection, reason: String?) {}
    }

    static func ended(_ future: EventLoopFuture<HurryableWait.End>) -> HurryableWait.End? {
        let end = NIOLockedValueBox<HurryableWait.End?>(nil)
        future.whenSuccess { value in end.withLockedValue { $0 = value } }
        return end.withLockedValue { $0 }
    }

    @Test("a wait with nothing to end it early lasts its whole time, to the nanosecond, and no longer")
    func lastsItsTime() throws {
        let loop = EmbeddedEventLoop()
        defer { try? loop.syncShutdownGracefully() }
        let wait = HurryableWait().wait(upTo: .seconds(30), on: loop)
        loop.advanceTime(by: .seconds(30) - .nanoseconds(1))
        #expect(Self.ended(wait) == nil)
        loop.advanceTime(by: .nanoseconds(1))
        #expect(Self.ended(wait) == .elapsed)
    }

    @Test("hurry() ends a wait under way, and every later one as it starts")
    func hurryEndsWaits() throws {
        let loop = EmbeddedEventLoop()
        defer { try? loop.syncShutdownGracefully() }
        let waits = HurryableWait()
        let notice = waits.wait(upTo: .seconds(3), on: loop)
        loop.advanceTime(by: .seconds(1))
        #expect(Self.ended(notice) == nil)
        waits.hurry()
        loop.run()
        #expect(Self.ended(notice) == .hurried)
        let drain = waits.wait(upTo: .seconds(30), on: loop)
        loop.run()
        #expect(Self.ended(drain) == .hurried)
        #expect(waits.isHurried)
    }

    @Test("a wait ends when what it waits for completes, and its timer goes with it")
    func endsWhenDone() throws {
        let loop = EmbeddedEventLoop()
        defer { try? loop.syncShutdownGracefully() }
        let closed = loop.makePromise(of: Void.self)
        let wait = HurryableWait().wait(upTo: .seconds(30), on: loop, until: closed.futureResult)
        loop.advanceTime(by: .seconds(5))
        closed.succeed()
        loop.run()
        #expect(Self.ended(wait) == .done)
        // The 30 s timer was cancelled: moving past it changes nothing.
        loop.advanceTime(by: .seconds(60))
        #expect(Self.ended(wait) == .done)
    }

    @Test("a drain ends when the last open connection closes, not at its deadline nor at a later poll")
    func drainEndsAtLastClose() throws {
        let loop = EmbeddedEventLoop()
        defer { try? loop.syncShutdownGracefully() }
        let tracker = ConnectionTracker()
        var channels: [EmbeddedChannel] = []
        for port in 1 ... 3 {
            let channel = EmbeddedChannel(loop: loop)
            try channel.connect(to: SocketAddress(ipAddress: "198.51.100.7", port: port)).wait()
            try channel.pipeline.syncOperations.addHandler(ConnectionHandler(
                serviceName: "chat", listener: Recorder(), settings: NetworkSettings(),
                logger: Logger(label: "conn"), tracker: tracker
            ))
            channels.append(channel)
        }
        let allClosed = loop.makePromise(of: Void.self)
        tracker.succeedWhenAllClosed(allClosed)
        let drain = HurryableWait().wait(upTo: .seconds(30), on: loop, until: allClosed.futureResult)
        loop.run()
        for channel in channels.dropLast() {
            loop.advanceTime(by: .seconds(2))
            _ = try channel.close().wait()
            #expect(Self.ended(drain) == nil)
        }
        loop.advanceTime(by: .seconds(2))
        _ = try channels[2].close().wait()
        loop.run()
        #expect(Self.ended(drain) == .done)
        allClosed.succeed()  // as the server does: a second completion is ignored
    }

    @Test("with nothing open, waiting for all to close ends at once")
    func nothingOpen() throws {
        let loop = EmbeddedEventLoop()
        defer { try? loop.syncShutdownGracefully() }
        let allClosed = loop.makePromise(of: Void.self)
        ConnectionTracker().succeedWhenAllClosed(allClosed)
        let done = NIOLockedValueBox(false)
        allClosed.futureResult.whenSuccess { done.withLockedValue { $0 = true } }
        #expect(done.withLockedValue { $0 })
    }
}

import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NIOPosix
import NIOSSL
import NetHostTestSupport
import Testing
@testable import NetHost
@testable import NetHostCore
@testable import NetHostLua

/// A transport whose connect attempts never complete (a peer that drops SYNs), so
/// the connect timeout is what ends them: on an `EmbeddedEventLoop`, at the exact
/// virtual time. Names resolve to `addresses`.
final class StalledTransport: OutgoingTransport {
    let addresses: [SocketAddress]
    private let state = NIOLockedValueBox<(attempts: [SocketAddress], cancelled: Int, promises: [EventLoopPromise<any Channel>])>(([], 0, []))

    init(addresses: [SocketAddress] = []) { self.addresses = addresses }

    var attempts: [SocketAddress] { state.withLockedValue { $0.attempts } }
    var cancelled: Int { state.withLockedValue { $0.cancelled } }

    func resolve(host: String, port: Int, on loop: any EventLoop) -> EventLoopFuture<[SocketAddress]> {
        loop.makeSucceededFuture(addresses)
    }

    func connect(to address: SocketAddress, on loop: any EventLoop, settings: NetworkSettings, readSize: Int) -> OutgoingAttempt {
        let promise = loop.makePromise(of: (any Channel).self)
        state.withLockedValue { state in
            state.attempts.append(address)
            state.promises.append(promise)
        }
        return OutgoingAttempt(channel: promise.futureResult) { [state] in
            state.withLockedValue { $0.cancelled += 1 }
            promise.fail(ChannelError.ioOnClosedChannel)
        }
    }

    func clientTLSContext(_ options: OutgoingTLSOptions, on loop: any EventLoop) -> EventLoopFuture<NIOSSLContext> {
        loop.makeFailedFuture(ChannelError.operationUnsupported)
    }

    /// Fails what is still pending: a promise must not be dropped uncompleted.
    func finish() {
        for promise in state.withLockedValue({ $0.promises }) { promise.fail(ChannelError.alreadyClosed) }
    }
}

/// What an outgoing connection's listener heard, in order.
final class OutgoingEvents: OutgoingConnectionListener {
    private let lines = NIOLockedValueBox<[String]>([])
    var all: [String] { lines.withLockedValue { $0 } }
    func onConnect(_ connection: Connection) throws { lines.withLockedValue { $0.append("connect") } }
    func onIncoming(_ connection: Connection, data: ByteBuffer) throws {
        lines.withLockedValue { $0.append("incoming \(String(buffer: data))") }
    }
    func onDisconnect(_ connection: Connection, reason: String?) {
        lines.withLockedValue { $0.append("disconnect \(reason ?? "nil")") }
    }
    func onConnectFailed(_ outgoing: OutgoingConnection, reason: String?) {
        lines.withLockedValue { $0.append("failed \(reason ?? "nil")") }
    }
}

@Suite("Outgoing connections: the pending state, on virtual time")
struct OutgoingPendingTests {
    let logger = Logger(label: "test")

    private func make(
        _ loop: EmbeddedEventLoop, _ transport: StalledTransport, _ events: OutgoingEvents, host: String = "192.0.2.1",
        settings: NetworkSettings = NetworkSettings()
    ) -> OutgoingConnection {
        let outgoing = OutgoingConnection(
            host: host, port: 7000, listener: events, settings: settings, transport: transport, eventLoop: loop, logger: logger
        )
        outgoing.start()
        loop.run()
        return outgoing
    }

    @Test("an attempt that never completes ends at connect_timeout exactly: nothing at 19.999 s, 'connection timed out' at 20 s")
    func connectTimeout() throws {
        let loop = EmbeddedEventLoop()
        let transport = StalledTransport()
        defer { transport.finish(); try? loop.syncShutdownGracefully() }
        let events = OutgoingEvents()
        let outgoing = make(loop, transport, events)
        #expect(transport.attempts.map(\.port) == [7000])
        loop.advanceTime(by: .milliseconds(19_999))
        #expect(events.all.isEmpty)
        #expect(outgoing.isOpen)
        loop.advanceTime(by: .milliseconds(1))
        #expect(events.all == ["failed connection timed out"])
        #expect(transport.cancelled == 1)
        #expect(!outgoing.isOpen)
    }

    @Test("a name with two addresses: each gets connect_timeout in turn, in the resolver's order")
    func addressesInOrder() throws {
        let loop = EmbeddedEventLoop()
        let addresses = [try SocketAddress(ipAddress: "2001:db8::1", port: 7000), try SocketAddress(ipAddress: "192.0.2.1", port: 7000)]
        let transport = StalledTransport(addresses: addresses)
        defer { transport.finish(); try? loop.syncShutdownGracefully() }
        let events = OutgoingEvents()
        var settings = try NetworkSettings.parsing(["connect_timeout": .number(5)])
        settings.sendBufferBudget = SendBufferBudget()
        _ = make(loop, transport, events, host: "backend.example", settings: settings)
        #expect(transport.attempts == [addresses[0]])
        loop.advanceTime(by: .seconds(5))
        #expect(transport.attempts == addresses)
        #expect(events.all.isEmpty)
        loop.advanceTime(by: .milliseconds(4_999))
        #expect(events.all.isEmpty)
        loop.advanceTime(by: .milliseconds(1))
        #expect(events.all == ["failed connection timed out"])
    }

    @Test("writes before the connection is made wait, counted against max_send_buffer_size and the total budget")
    func queuedWritesCounted() throws {
        let loop = EmbeddedEventLoop()
        let transport = StalledTransport()
        defer { transport.finish(); try? loop.syncShutdownGracefully() }
        let events = OutgoingEvents()
        var settings = NetworkSettings()
        let budget = SendBufferBudget()
        settings.sendBufferBudget = budget
        settings.maxSendBufferSize = 2048
        let outgoing = make(loop, transport, events, settings: settings)
        #expect(outgoing.write(String(repeating: "a", count: 1000)))
        #expect(outgoing.queuedSendStorage >= 1000)
        #expect(budget.used == outgoing.queuedSendStorage)
        #expect(!outgoing.write(String(repeating: "b", count: 1500)))  // past 2048
        loop.run()
        #expect(events.all == ["failed send buffer full"])
        #expect(budget.used == 0)
        #expect(transport.cancelled == 1)
    }

    @Test("close before the connection is made cancels the attempt; the listener hears it with no reason")
    func closeCancels() throws {
        let loop = EmbeddedEventLoop()
        let transport = StalledTransport()
        defer { transport.finish(); try? loop.syncShutdownGracefully() }
        let events = OutgoingEvents()
        var settings = NetworkSettings()
        settings.sendBufferBudget = SendBufferBudget()
        let outgoing = make(loop, transport, events, settings: settings)
        outgoing.write("queued")
        outgoing.close()
        #expect(events.all.isEmpty)  // on the next turn, not inside close()
        loop.run()
        #expect(events.all == ["failed nil"])
        #expect(transport.cancelled == 1)
        #expect(settings.sendBufferBudget.used == 0)
        loop.advanceTime(by: .seconds(30))
        #expect(events.all == ["failed nil"])  // the timeout does not fire afterwards
    }
}

/// Real sockets, with the name's addresses fixed by the test: the first refuses, the next serves.
@Suite("Outgoing connections: addresses tried in order over real sockets")
struct OutgoingFallbackTests {
    struct FixedResolution: OutgoingTransport {
        let addresses: [SocketAddress]
        let real = PosixOutgoingTransport()
        func resolve(host: String, port: Int, on loop: any EventLoop) -> EventLoopFuture<[SocketAddress]> {
            loop.makeSucceededFuture(addresses)
        }
        func connect(to address: SocketAddress, on loop: any EventLoop, settings: NetworkSettings, readSize: Int) -> OutgoingAttempt {
            real.connect(to: address, on: loop, settings: settings, readSize: readSize)
        }
        func clientTLSContext(_ options: OutgoingTLSOptions, on loop: any EventLoop) -> EventLoopFuture<NIOSSLContext> {
            real.clientTLSContext(options, on: loop)
        }
    }

    @Test("IPv6 refused, then IPv4 connects: what was written before goes out once, on the connection made")
    func fallsBackInOrder() async throws {
        let backend = try LoopbackBackend(host: "127.0.0.1", mode: .echo)
        defer { backend.shutdown() }
        let closed = try FreePort.allocate()
        let addresses = [try SocketAddress(ipAddress: "::1", port: closed), try SocketAddress(ipAddress: "127.0.0.1", port: backend.port)]
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let events = OutgoingEvents()
        let outgoing = try await loop.submit {
            let outgoing = OutgoingConnection(
                host: "two.example", port: 0, listener: events, settings: NetworkSettings(),
                transport: FixedResolution(addresses: addresses), eventLoop: loop, logger: Logger(label: "test")
            )
            outgoing.start()
            outgoing.write("sent early\n")
            return NIOLoopBound(outgoing, eventLoop: loop)
        }.get()
        let deadline = ContinuousClock.now + .seconds(10)
        while !events.all.contains(where: { $0.hasPrefix("incoming") }), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(5))
        }
        #expect(events.all == ["connect", "incoming sent early\n"])
        let peer = try await loop.submit { outgoing.value.peerIP + " " + String(outgoing.value.peerPort) }.get()
        #expect(peer == "127.0.0.1 \(backend.port)")
        try await loop.submit { outgoing.value.close() }.get()
        try await group.shutdownGracefully()
    }
}

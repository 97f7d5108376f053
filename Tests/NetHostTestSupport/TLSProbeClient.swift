import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS

/// A TLS client for tests that need to see the steps: when the handshake finished
/// (bounded, so a server that cannot finish it fails the test rather than hangs it),
/// every byte received, and the server's close. It can send plain bytes first (a
/// PROXY header), and half-close (close_notify, then the TCP output).
public final class TLSProbeClient: Sendable {
    private let channel: any Channel
    private let group: MultiThreadedEventLoopGroup
    private let state: NIOLockedValueBox<State>

    private struct State {
        var received: [UInt8] = []
        var handshakeDone = false
        var closed = false
    }

    /// Connects and starts the handshake; `preamble` goes out in clear first.
    public static func connect(host: String = "127.0.0.1", port: Int, preamble: [UInt8] = []) async throws -> TLSProbeClient {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = .none
        let context = try NIOSSLContext(configuration: configuration)
        let state = NIOLockedValueBox(State())
        let channel = try await ClientBootstrap(group: group)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if !preamble.isEmpty {
                        channel.writeAndFlush(channel.allocator.buffer(bytes: preamble), promise: nil)
                    }
                    try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: context, serverHostname: nil))
                    try channel.pipeline.syncOperations.addHandler(Recorder(state: state))
                }
            }
            .connect(host: host, port: port).get()
        return TLSProbeClient(channel: channel, group: group, state: state)
    }

    private init(channel: any Channel, group: MultiThreadedEventLoopGroup, state: NIOLockedValueBox<State>) {
        self.channel = channel
        self.group = group
        self.state = state
    }

    /// The local port the server sees as the client's.
    public var localPort: Int { channel.localAddress?.port ?? 0 }

    /// Whether the handshake finished within `timeout`.
    public func waitForHandshake(timeout: Duration = .seconds(5)) async -> Bool {
        await waitUntil(timeout: timeout) { $0.handshakeDone }
    }

    public func send(_ bytes: [UInt8]) async throws {
        try await channel.writeAndFlush(channel.allocator.buffer(bytes: bytes)).get()
    }

    public func send(_ text: String) async throws {
        try await send(Array(text.utf8))
    }

    public var received: [UInt8] { state.withLockedValue { $0.received } }
    public var receivedText: String { String(decoding: received, as: UTF8.self) }
    public var isClosed: Bool { state.withLockedValue { $0.closed } }

    /// Waits until at least `count` bytes have arrived (or the server closed), at most `timeout`.
    public func waitForBytes(_ count: Int, timeout: Duration = .seconds(10)) async -> Bool {
        await waitUntil(timeout: timeout) { $0.received.count >= count }
    }

    public func waitForText(_ text: String, timeout: Duration = .seconds(5)) async -> Bool {
        await waitUntil(timeout: timeout) { String(decoding: $0.received, as: UTF8.self).contains(text) }
    }

    public func waitForClose(timeout: Duration = .seconds(5)) async -> Bool {
        await waitUntil(timeout: timeout) { $0.closed }
    }

    /// Half-closes: close_notify, then the TCP output; reading goes on.
    public func closeOutput() async throws {
        try await channel.close(mode: .output).get()
    }

    public func close() async {
        try? await channel.close().get()
    }

    public func shutdown() async {
        try? await channel.close().get()
        try? await group.shutdownGracefully()
    }

    private func waitUntil(timeout: Duration, _ condition: (State) -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if state.withLockedValue({ condition($0) }) { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return state.withLockedValue { condition($0) }
    }

    private final class Recorder: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let state: NIOLockedValueBox<State>
        init(state: NIOLockedValueBox<State>) { self.state = state }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            state.withLockedValue { $0.received += buffer.readableBytesView }
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if case TLSUserEvent.handshakeCompleted = event {
                state.withLockedValue { $0.handshakeDone = true }
            }
            if case ChannelEvent.inputClosed = event {
                state.withLockedValue { $0.closed = true }
            }
            context.fireUserInboundEventTriggered(event)
        }

        func channelInactive(context: ChannelHandlerContext) {
            state.withLockedValue { $0.closed = true }
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }
}

import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A plain NIO server on loopback for outgoing connections to reach: it echoes,
/// or, stalled, reads nothing until told to (then counts what arrives). It keeps
/// the first bytes of each connection, so a test can parse what was sent first
/// (a PROXY header).
public final class LoopbackBackend: Sendable {
    public enum Mode: Sendable {
        case echo
        /// Reads nothing until `startReading()`, then counts and discards.
        case stalledSink
    }

    public let port: Int
    private let group: MultiThreadedEventLoopGroup
    private let server: any Channel
    private let state = NIOLockedValueBox(State())
    /// How much of each connection's start `firstBytes` keeps.
    public static let keptPrefix = 4096

    struct State {
        var connections: [any Channel] = []
        var prefixes: [[UInt8]] = []
        var received = 0
        var reading = false
    }

    public init(host: String = "127.0.0.1", mode: Mode) throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let state = self.state
        do {
            server = try ServerBootstrap(group: group)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.autoRead, value: mode == .echo)
                .childChannelInitializer { channel in
                    let index = state.withLockedValue { state in
                        state.connections.append(channel)
                        state.prefixes.append([])
                        return state.prefixes.count - 1
                    }
                    if mode == .stalledSink, state.withLockedValue({ $0.reading }) {
                        channel.setOption(.autoRead, value: true).whenSuccess { channel.read() }
                    }
                    return channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(Handler(mode: mode, index: index, state: state))
                    }
                }
                .bind(host: host, port: 0).wait()
        } catch {
            try? group.syncShutdownGracefully()
            throw error
        }
        self.group = group
        self.port = server.localAddress?.port ?? 0
    }

    /// Every byte received so far, all connections together.
    public var receivedBytes: Int { state.withLockedValue { $0.received } }
    public var connectionCount: Int { state.withLockedValue { $0.connections.count } }
    /// The first bytes (up to `keptPrefix`) each connection sent, in order of connection.
    public var firstBytes: [[UInt8]] { state.withLockedValue { $0.prefixes } }

    /// A stalled sink starts reading, on its connections now and later.
    public func startReading() {
        let connections = state.withLockedValue { state in
            state.reading = true
            return state.connections
        }
        for channel in connections {
            channel.setOption(.autoRead, value: true).whenSuccess { channel.read() }
        }
    }

    public func shutdown() {
        try? server.close().wait()
        for channel in state.withLockedValue({ $0.connections }) { channel.close(promise: nil) }
        try? group.syncShutdownGracefully()
    }

    private final class Handler: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let mode: Mode
        let index: Int
        let state: NIOLockedValueBox<State>

        init(mode: Mode, index: Int, state: NIOLockedValueBox<State>) {
            self.mode = mode
            self.index = index
            self.state = state
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            state.withLockedValue { state in
                state.received += buffer.readableBytes
                let room = LoopbackBackend.keptPrefix - state.prefixes[index].count
                if room > 0 {
                    state.prefixes[index] += buffer.readableBytesView.prefix(room)
                }
            }
            if mode == .echo {
                context.writeAndFlush(data, promise: nil)
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }
}

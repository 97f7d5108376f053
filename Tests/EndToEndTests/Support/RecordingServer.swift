import NIOCore
import NIOPosix
import SocketTestSupport

/// A tiny TCP server that records every byte each connection sends it: the stand-in
/// backend behind HAProxy or nginx when a test wants to see exactly what the proxy
/// sends (the PROXY header first).
///
/// Optionally answers (``Reply``), so a client can tell its bytes went all the way
/// through, and closes, so a client can see the close travel back.
final class RecordingServer: Sendable {
    /// One accepted connection, as recorded so far.
    struct Connection: Sendable {
        /// The peer: the proxy, not the end client. Nil when the peer had already
        /// reset the connection when it was accepted (a short health check, say).
        let remoteAddress: SocketAddress?
        var bytes: [UInt8] = []
        var closed = false
    }

    /// Once a connection's bytes contain `trigger`, write `reply` (once), then close
    /// the connection if `close`.
    struct Reply: Sendable {
        var trigger: [UInt8]
        var reply: [UInt8]
        var close: Bool

        init(when trigger: String, reply: String, close: Bool = false) {
            self.trigger = Array(trigger.utf8)
            self.reply = Array(reply.utf8)
            self.close = close
        }
    }

    let host: String
    let port: Int
    private let channel: any Channel
    private let recorded: Locked<[Connection]>

    private init(host: String, channel: any Channel, recorded: Locked<[Connection]>) throws {
        guard let port = channel.localAddress?.port else { throw FixtureError("the recording server has no port") }
        self.host = host
        self.port = port
        self.channel = channel
        self.recorded = recorded
    }

    /// Starts listening on `host:port` (port 0: any free port).
    static func start(host: String = "127.0.0.1", port: Int = 0, reply: Reply? = nil) async throws -> RecordingServer {
        let recorded = Locked<[Connection]>([])
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let index = recorded.withLock { connections in
                        connections.append(Connection(remoteAddress: channel.remoteAddress))
                        return connections.count - 1
                    }
                    try channel.pipeline.syncOperations.addHandler(
                        RecordingHandler(index: index, recorded: recorded, reply: reply))
                }
            }
            .bind(host: host, port: port)
            .get()
        return try RecordingServer(host: host, channel: channel, recorded: recorded)
    }

    /// Every connection accepted so far, in order of arrival.
    var connections: [Connection] { self.recorded.current }

    /// Waits for a connection whose bytes satisfy `predicate`, and returns it.
    func waitForConnection(
        timeout: Duration = .seconds(10),
        where predicate: (Connection) -> Bool
    ) async throws -> Connection {
        let found = try await poll(timeout: timeout) { self.connections.first(where: predicate) }
        guard let found else {
            let seen = self.connections.map { "    \($0.bytes.count) bytes: \(printable($0.bytes))" }
            throw FixtureError(
                "no matching connection reached the recording server in \(timeout); it saw \(seen.count):\n"
                    + seen.joined(separator: "\n"))
        }
        return found
    }

    /// Waits for a connection whose bytes contain `marker`.
    func waitForConnection(containing marker: String, timeout: Duration = .seconds(10)) async throws -> Connection {
        let pattern = Array(marker.utf8)
        return try await self.waitForConnection(timeout: timeout) { $0.bytes.contains(subsequence: pattern) }
    }

    /// Closes the listener (accepted connections stay until their peers close).
    func stop() async throws {
        try await self.channel.close()
    }

    deinit {
        self.channel.close(promise: nil)
    }
}

private final class RecordingHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let index: Int
    private let recorded: Locked<[RecordingServer.Connection]>
    private let reply: RecordingServer.Reply?
    private var replied = false

    init(index: Int, recorded: Locked<[RecordingServer.Connection]>, reply: RecordingServer.Reply?) {
        self.index = index
        self.recorded = recorded
        self.reply = reply
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = Array(buffer: self.unwrapInboundIn(data))
        let all = self.recorded.withLock { connections in
            connections[self.index].bytes += bytes
            return connections[self.index].bytes
        }
        if let reply, !self.replied, all.contains(subsequence: reply.trigger) {
            self.replied = true
            let written = context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(bytes: reply.reply)))
            if reply.close {
                let context = NIOLoopBound(context, eventLoop: context.eventLoop)
                written.whenComplete { _ in context.value.close(promise: nil) }
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.recorded.withLock { $0[self.index].closed = true }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Resets from health checks are expected; just close.
        context.close(promise: nil)
    }
}

extension Array where Element == UInt8 {
    func contains(subsequence pattern: [UInt8]) -> Bool {
        guard !pattern.isEmpty else { return true }
        guard pattern.count <= self.count else { return false }
        for start in 0...(self.count - pattern.count) where self[start..<start + pattern.count].elementsEqual(pattern) {
            return true
        }
        return false
    }
}

/// Bytes as text with non-printable bytes escaped (`\r`, `\n`, `\x21`), for messages.
func printable(_ bytes: [UInt8]) -> String {
    var text = ""
    for byte in bytes {
        switch byte {
        case 0x0d: text += "\\r"
        case 0x0a: text += "\\n"
        case 0x5c: text += "\\\\"
        case 0x20...0x7e: text.unicodeScalars.append(Unicode.Scalar(byte))
        default: text += "\\x" + (byte < 16 ? "0" : "") + String(byte, radix: 16)
        }
    }
    return text
}

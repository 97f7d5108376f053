// nio-baseline: the smallest SwiftNIO server that does what the benchmarks ask,
// the floor under NetHost's Swift services (what NIO itself costs, before any of
// NetHost's own work). One event loop, one channel handler per connection.
//
//   nio-baseline WHOAMI_PORT ECHO_PORT
//
// Each connection starts with a PROXY v1 or v2 header, parsed by NetHost's own
// parser. On the whoami port it answers "SRCIP SRCPORT\n" and closes; on the echo
// port it echoes every byte after the header. No trust list, limits, timeouts or
// logging: this is a measuring stick, not a server.
import NIOCore
import NIOPosix
import ProxyProtocol
#if canImport(Glibc)
import Glibc
#endif

final class BaselineHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let isWhoami: Bool
    private var parser = ProxyHeaderParser()
    private var pending: ByteBuffer?
    private var headerDone = false

    init(isWhoami: Bool) { self.isWhoami = isWhoami }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        if headerDone {
            context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
            return
        }
        if var earlier = pending {
            earlier.writeBuffer(&buffer)
            buffer = earlier
        }
        let result = try? buffer.withUnsafeReadableBytes { bytes throws(ProxyHeaderError) in try parser.parse(buffer: bytes) }
        switch result {
        case .complete(let header, let consumed):
            headerDone = true
            pending = nil
            buffer.moveReaderIndex(forwardBy: consumed)
            if isWhoami {
                let reply = "\(header.sourceAddress ?? "?") \(header.sourcePort ?? 0)\n"
                context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(string: reply)), promise: nil)
                context.close(promise: nil)
            } else if buffer.readableBytes > 0 {
                context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
            }
        case .needMoreData:
            pending = buffer
        case nil:
            context.close(promise: nil)
        }
    }
}

@main
struct NIOBaseline {
    static func main() throws {
        let arguments = CommandLine.arguments
        guard arguments.count == 3, let whoami = Int(arguments[1]), let echo = Int(arguments[2]) else {
            print("usage: nio-baseline WHOAMI_PORT ECHO_PORT")
            return
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        for (port, isWhoami) in [(whoami, true), (echo, false)] {
            _ = try ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 1024)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .serverChannelOption(.tcpOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(BaselineHandler(isWhoami: isWhoami))
                    }
                }
                .bind(host: "127.0.0.1", port: port).wait()
        }
        print("listening on \(whoami) (whoami) and \(echo) (echo)")
        // Runs until killed, like the C baseline.
        while true { sleep(3600) }
    }
}

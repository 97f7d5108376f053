import Logging
import NetHostCore
import NIOCore

/// Each connection to an agent-check port: one handler that writes the reply line
/// as soon as the connection is up and closes. What the peer sends (HAProxy's
/// `agent-send`) is read and dropped, so nothing is buffered.
struct AgentCheckPipeline: ServicePipeline {
    let responder: AgentCheckResponder
    let logger: Logger

    func executor(forPort port: Int, services: ServiceRegistry) -> NetService.Executor { .anyLoop }

    func initialize(channel: any Channel, port: Int, context: PipelineContext) -> EventLoopFuture<Void> {
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(AgentCheckHandler(responder: responder, logger: logger))
        }
    }
}

final class AgentCheckHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let responder: AgentCheckResponder
    private var logger: Logger
    private var answered = false

    init(responder: AgentCheckResponder, logger: Logger) {
        self.responder = responder
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { answer(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        answer(context)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("agent check connection failed: \(error)")
        context.close(promise: nil)
    }

    private func answer(_ context: ChannelHandlerContext) {
        guard !answered else { return }
        answered = true
        if let peer = context.channel.remoteAddress { logger[metadataKey: "peer"] = "\(peer)" }
        let channel = context.channel
        let logger = self.logger
        responder.reply(on: context.eventLoop).whenComplete { result in
            switch result {
            case .success(let reply):
                logger.debug("agent check answered \(reply.line.dropLast())")
                channel.writeAndFlush(ByteBuffer(string: reply.line)).whenComplete { _ in channel.close(promise: nil) }
            case .failure(let error):
                logger.warning("agent check: no answer, closing: \(error)")
                channel.close(promise: nil)
            }
        }
    }
}

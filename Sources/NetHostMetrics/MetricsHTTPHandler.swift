import Logging
import NIOCore
import NIOHTTP1

/// What a request to the metrics port asks for. Apart from the handler, so that
/// the routing is plain data a test reads without a channel.
enum MetricsRoute: Equatable {
    /// GET /metrics (`withBody`), or HEAD /metrics (headers only).
    case metrics(withBody: Bool)
    /// /metrics with another method.
    case methodNotAllowed
    case notFound

    static let path = "/metrics"

    init(method: HTTPMethod, uri: String) {
        // A scraper may add a query (Prometheus' `params`); the page is the same.
        let path = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? uri
        guard path == Self.path else {
            self = .notFound
            return
        }
        switch method {
        case .GET: self = .metrics(withBody: true)
        case .HEAD: self = .metrics(withBody: false)
        default: self = .methodNotAllowed
        }
    }
}

/// Serves the metrics page over HTTP/1.1, after NIOHTTP1's server pipeline
/// (`configureHTTPServerPipeline(withErrorHandling: true)`): the decoder, the
/// pipelining handler that keeps responses in request order, and the error handler
/// that answers a request NIO cannot parse with 400 and closes.
///
/// GET /metrics answers the page (`text/plain; version=0.0.4`, Prometheus' text
/// format), HEAD /metrics its headers, another method 405, any other path 404. A
/// request body is read and dropped. The connection stays open when the client asks
/// for keep-alive (Prometheus does, between scrapes), else closes after the answer.
final class MetricsHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// Makes the page, on the given loop (the scrape hooks may read other loops).
    private let page: @Sendable (any EventLoop) -> EventLoopFuture<[UInt8]>
    private let baseLogger: Logger
    private var logger: Logger
    private var request: HTTPRequestHead?
    /// A scraper that keeps its connection open sends a request every scrape interval;
    /// one silent for `idleTimeout` has gone and is closed. On the loop's clock
    /// (`scheduleTask`), so a test drives it with `EmbeddedEventLoop.advanceTime`.
    private let idleTimeout: TimeAmount
    private var idleTimer: Scheduled<Void>?

    init(page: @escaping @Sendable (any EventLoop) -> EventLoopFuture<[UInt8]>, idleTimeout: TimeAmount, logger: Logger) {
        self.page = page
        self.idleTimeout = idleTimeout
        self.baseLogger = logger
        self.logger = logger
    }

    func channelActive(context: ChannelHandlerContext) {
        noteClient(context)
        armIdleTimer(context: context)
        context.fireChannelActive()
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive {
            noteClient(context)
            armIdleTimer(context: context)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        idleTimer?.cancel()
        idleTimer = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        idleTimer?.cancel()
        idleTimer = nil
        context.fireChannelInactive()
    }

    /// Starts the idle time again: at the start and at each part of a request.
    private func armIdleTimer(context: ChannelHandlerContext) {
        idleTimer?.cancel()
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        idleTimer = context.eventLoop.scheduleTask(in: idleTimeout) {
            let (handler, context) = bound.value
            handler.logger.debug("closing a metrics connection idle for \(handler.idleTimeout)")
            context.close(promise: nil)
        }
    }

    /// Every line about this connection names the scraper (the host's `client` metadata).
    private func noteClient(_ context: ChannelHandlerContext) {
        logger = baseLogger
        if let remote = context.channel.remoteAddress {
            logger[metadataKey: "client"] = "\(remote.ipAddress ?? "?"):\(remote.port ?? 0)"
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        armIdleTimer(context: context)
        switch unwrapInboundIn(data) {
        case .head(let head):
            request = head
        case .body:
            break  // nothing to read in a scrape; dropped as it streams in, never held
        case .end:
            guard let head = request else { return }
            request = nil
            respond(to: head, context: context)
        }
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
        let route = MetricsRoute(method: head.method, uri: head.uri)
        logger.debug("\(head.method) \(head.uri)", metadata: ["route": "\(route)"])
        switch route {
        case .notFound:
            send(status: .notFound, body: Array("not found: metrics are at \(MetricsRoute.path)\n".utf8), head: head, context: context)
        case .methodNotAllowed:
            send(
                status: .methodNotAllowed, body: Array("use GET or HEAD\n".utf8), head: head, context: context,
                extraHeaders: [("Allow", "GET, HEAD")]
            )
        case .metrics(let withBody):
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            page(context.eventLoop).hop(to: context.eventLoop).whenComplete { result in
                let (handler, context) = bound.value
                switch result {
                case .success(let page):
                    handler.send(
                        status: .ok, body: page, head: head, context: context,
                        contentType: Self.contentType, includeBody: withBody
                    )
                case .failure(let error):
                    handler.logger.error("metrics page failed: \(error)")
                    handler.send(status: .internalServerError, body: Array("metrics unavailable\n".utf8), head: head, context: context)
                }
            }
        }
    }

    private func send(
        status: HTTPResponseStatus, body: [UInt8], head request: HTTPRequestHead, context: ChannelHandlerContext,
        contentType: String = "text/plain; charset=utf-8", includeBody: Bool = true, extraHeaders: [(String, String)] = []
    ) {
        guard context.channel.isActive else { return }
        var headers = HTTPHeaders([("Content-Type", contentType), ("Content-Length", String(body.count))])
        headers.add(contentsOf: extraHeaders)
        let keepAlive = request.isKeepAlive
        headers.add(name: "Connection", value: keepAlive ? "keep-alive" : "close")
        let response = HTTPResponseHead(version: request.version, status: status, headers: headers)
        context.write(wrapOutboundOut(.head(response)), promise: nil)
        if includeBody, !body.isEmpty {
            var buffer = context.channel.allocator.buffer(capacity: body.count)
            buffer.writeBytes(body)
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
        let done = context.writeAndFlushPromise(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            done.whenComplete { _ in bound.value.close(promise: nil) }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // NIO's error handler before this one has answered 400 to a bad request already.
        logger.debug("metrics connection error: \(error)")
        context.close(promise: nil)
    }
}

extension ChannelHandlerContext {
    fileprivate func writeAndFlushPromise(_ data: NIOAny) -> EventLoopFuture<Void> {
        let promise = eventLoop.makePromise(of: Void.self)
        writeAndFlush(data, promise: promise)
        return promise.futureResult
    }
}

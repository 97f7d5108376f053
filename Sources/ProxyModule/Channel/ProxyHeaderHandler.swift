import Logging
import NIOCore
import NetHost
import ProxyProtocol

/// The first stage on a PROXY port. It refuses untrusted peers before reading a
/// byte, reads exactly the header within a time bound, then hands the
/// connection to the mapped service: that service's `onconnect` runs, then its
/// `onincoming` gets the bytes that followed the header, all before the next read.
/// The parsing itself is `ProxyHeaderParser`'s; this stage only does the I/O.
final class ProxyHeaderHandler: ChannelInboundHandler, RemovableChannelHandler, LoopTimerTarget {
    typealias InboundIn = ByteBuffer

    private let port: Int
    private let runtime: ProxyRuntime
    /// The options in force when the connection arrived; a reload affects later ones.
    private let configuration: ProxyConfiguration
    private var statistics: ProxyStatistics { runtime.statistics }
    private let context: PipelineContext
    /// The sender's address, once known; it holds a pending-header slot until the header is done.
    private var peerIP: String?
    private var holdsPendingSlot = false
    private var parser: ProxyHeaderParser
    private var received: ByteBuffer?
    /// The header's time limit, on the loop's timer wheel (set by `start`, with the context).
    private var timers: LoopTimers?
    private var timedContext: ChannelHandlerContext?
    var loopTimerSlot = LoopTimerSlot()
    private let baseLogger: Logger
    private var peerAddress: SocketAddress?
    private var state = State.waitingForHeader

    private enum State {
        case waitingForHeader
        /// Handed over, refused or timed out: nothing more for this stage to do.
        case done
    }

    init(port: Int, runtime: ProxyRuntime, context: PipelineContext) {
        self.port = port
        self.runtime = runtime
        self.configuration = runtime.configuration
        self.context = context
        self.parser = ProxyHeaderParser(maximumHeaderLength: configuration.maximumHeaderLength)
        self.baseLogger = context.logger
    }

    /// The stage's logger with the peer and port, built only when a line is logged.
    private var logger: Logger {
        var logger = baseLogger
        logger[metadataKey: "module"] = "net_proxy"
        logger[metadataKey: "peer"] = "\(peerDescription)"
        logger[metadataKey: "port"] = "\(port)"
        return logger
    }

    /// Checks the level before building `logger`'s metadata: most connections log nothing.
    private func log(_ level: Logger.Level, _ message: @autoclosure () -> Logger.Message) {
        guard baseLogger.logLevel <= level else { return }
        logger.log(level: level, message())
    }

    private var peerDescription: String {
        peerAddress.map(\.logText) ?? "?"
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive {
            start(context: context)
        }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context: context)
        context.fireChannelActive()
    }

    private func start(context: ChannelHandlerContext) {
        guard timers == nil, state == .waitingForHeader else { return }
        let peer = context.channel.remoteAddress
        peerAddress = peer
        peerIP = peer?.ipText
        guard let peer else {
            // The peer reset before the accept completed (a health check that
            // connects and leaves): nothing to trust or distrust.
            state = .done
            statistics.record(.closedEarly, port: port)
            log(.debug, "the peer was gone before its connection was accepted")
            context.close(promise: nil)
            return
        }
        guard configuration.trustedProxies.contains(peer) else {
            refuse(context: context, outcome: .untrusted, level: .warning,
                   message: "refused a connection from an untrusted peer (not in proxy_trusted_proxies)")
            return
        }
        let limit = self.context.settings.maxPendingHeadersPerIP
        guard let peerIP, runtime.pending.enter(peerIP, limit: limit) else {
            refuse(context: context, outcome: .overLimit, level: .warning,
                   message: "refused a connection: this address already has \(limit) connections waiting for their PROXY header (max_pending_headers_per_ip)")
            return
        }
        holdsPendingSlot = true
        let timers = LoopTimers.current(on: context.eventLoop)
        self.timers = timers
        timedContext = context
        timers.schedule(self, at: timers.now + configuration.headerTimeLimit)
    }

    func loopTimerFired() {
        guard state == .waitingForHeader, let context = timedContext else { return }
        let have = received?.readableBytes ?? 0
        refuse(context: context, outcome: .timeout, level: .warning,
               message: "no complete PROXY header within \(configuration.headerTimeout) s", metadata: ["received_bytes": "\(have)"])
    }

    /// The header is done with, one way or another: its time limit goes.
    private func stopTimer() {
        timers?.cancel(self)
        timedContext = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard state == .waitingForHeader else {
            return  // refused: the channel is closing, its bytes are not ours to pass on
        }
        var incoming = unwrapInboundIn(data)
        if received == nil {
            received = incoming
        } else {
            received?.writeBuffer(&incoming)  // in place: no copy of what came before
        }
        guard let bytes = received else { return }
        let result: ProxyHeaderParser.ParseResult
        do {
            result = try bytes.withUnsafeReadableBytes { buffer throws(ProxyHeaderError) in
                try parser.parse(buffer: buffer)
            }
        } catch {
            refuse(context: context, outcome: .invalid, level: .warning,
                   message: "invalid PROXY header: \(error)", reason: error.reason.rawValue)
            return
        }
        switch result {
        case .needMoreData:
            return
        case .complete(let header, let consumed):
            var remaining = bytes
            remaining.moveReaderIndex(forwardBy: consumed)
            received = nil
            handOver(context: context, header: header, remaining: remaining)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if state == .waitingForHeader {
            state = .done
            stopTimer()
            releasePendingSlot()
            statistics.record(.closedEarly, port: port)
            let have = received?.readableBytes ?? 0
            runtime.events.record(
                "the peer closed the connection before the PROXY header was complete", from: peerIP ?? "?",
                level: .info, metadata: ["port": "\(port)", "received_bytes": "\(have)", "peer": "\(peerDescription)"]
            )
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard state == .waitingForHeader else {
            context.fireErrorCaught(error)
            return
        }
        log(.debug, "connection error while waiting for the PROXY header: \(error)")
        context.close(promise: nil)
    }

    // MARK: Outcomes

    private func handOver(context: ChannelHandlerContext, header: ProxyHeader, remaining: ByteBuffer) {
        state = .done
        releasePendingSlot()
        stopTimer()
        let channel = context.channel
        let addresses = Self.addresses(for: header, peerIP: peerIP, channel: channel)
        let outcome: ProxyStatistics.Outcome = header.command == .local
            ? .local : (header.usesRealConnectionAddresses ? .unknownAddresses : .proxied)

        guard let serviceName = configuration.portMappings[port] else {
            refuse(context: context, outcome: .noService, level: .warning,
                   message: "port \(port) has no entry in proxy_port_mappings; closing after the header")
            return
        }
        guard let service = self.context.services.service(named: serviceName),
              let listener = service.listener
        else {
            refuse(context: context, outcome: .noService, level: .error,
                   message: "proxy_port_mappings sends port \(port) to service '\(serviceName)', which no loaded module provides")
            return
        }
        if service.executor(forPort: port, services: self.context.services) == .luaLoop, channel.eventLoop !== self.context.luaLoop {
            // Only while a reload that mapped this port to a Lua service moves the port to the
            // Lua loop (the old sockets still accept until the new one is bound beside them).
            refuse(context: context, outcome: .noService, level: .error,
                   message: "service '\(serviceName)' now runs in Lua but this connection was accepted on another thread")
            return
        }
        switch outcome {
        case .local:
            log(.debug, "PROXY LOCAL header (a health check), serving with the connection's own addresses")
        case .unknownAddresses:
            log(.debug, "PROXY header without client addresses (\(header.family)), serving with the connection's own addresses")
        default:
            log(.debug, "PROXY v\(header.version.rawValue) header: client \(addresses.clientIP) port \(addresses.clientPort)")
        }
        do {
            // Adding the service's stages runs its onconnect (or, for a TLS service,
            // waits for the handshake); then the bytes that followed the header, if
            // any, go to them; then this stage leaves the pipeline.
            try self.context.addServiceStages(
                to: context.pipeline.syncOperations, position: .after(self),
                service: service, listener: listener, addresses: addresses, origin: header
            )
        } catch {
            refuse(context: context, outcome: .handOverFailed, level: .error,
                   message: "could not hand the connection to service '\(serviceName)': \(error)")
            return
        }
        statistics.record(outcome, port: port)
        if remaining.readableBytes > 0 {
            context.fireChannelRead(wrapInboundOut(remaining))
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    private func refuse(
        context: ChannelHandlerContext,
        outcome: ProxyStatistics.Outcome,
        level: Logger.Level,
        message: String,
        reason: String? = nil,
        metadata: Logger.Metadata = [:]
    ) {
        state = .done
        releasePendingSlot()
        stopTimer()
        received = nil
        statistics.record(outcome, port: port, reason: reason)
        // Identical refusals from one peer are logged once, then summarised.
        var metadata = metadata
        metadata["port"] = "\(port)"
        metadata["peer"] = "\(peerDescription)"
        runtime.events.record(message, from: peerIP ?? "?", level: level, metadata: metadata)
        context.close(promise: nil)
    }

    private func releasePendingSlot() {
        guard holdsPendingSlot, let peerIP else { return }
        holdsPendingSlot = false
        runtime.pending.leave(peerIP)
    }

    /// The addresses a service sees: the header's client when it names one,
    /// else the socket's peer; the proxy is always the socket's peer, whose address
    /// `start` has already turned into text (`peerIP`).
    static func addresses(for header: ProxyHeader, peerIP: String?, channel: any Channel) -> ConnectionAddresses {
        let peer = channel.remoteAddress
        let local = channel.localAddress
        var addresses = ConnectionAddresses(
            clientIP: peerIP ?? peer?.ipText ?? "", clientPort: peer?.port ?? 0,
            serverIP: local?.ipText ?? "", serverPort: local?.port ?? 0
        )
        addresses.proxyIP = addresses.clientIP
        addresses.proxyPort = addresses.clientPort
        if !header.usesRealConnectionAddresses, let ip = header.sourceAddress, let port = header.sourcePort {
            addresses.clientIP = ip
            addresses.clientPort = Int(port)
        }
        return addresses
    }
}

extension ProxyHeaderHandler {
    typealias InboundOut = ByteBuffer
}

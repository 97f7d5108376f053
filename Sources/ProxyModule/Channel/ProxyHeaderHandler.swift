import Logging
import NIOCore
import NetHost
import ProxyProtocol

/// The first stage on a PROXY port. It refuses untrusted peers before reading a
/// byte, reads exactly the header within a time bound, then hands the
/// connection to the mapped service: that service's `onconnect` runs, then its
/// `onincoming` gets the bytes that followed the header, all before the next read.
/// The parsing itself is `ProxyHeaderParser`'s and the state `ProxyHeaderStateMachine`'s;
/// this stage does the I/O, the counting and the logging.
final class ProxyHeaderHandler: ChannelInboundHandler, RemovableChannelHandler, LoopTimerTarget {
    typealias InboundIn = ByteBuffer

    private let port: Int
    private let runtime: ProxyRuntime
    /// The options in force when the connection arrived; a reload affects later ones.
    private let configuration: ProxyConfiguration
    private var statistics: ProxyStatistics { runtime.statistics }
    private let context: PipelineContext
    private let baseLogger: Logger
    /// Where the connection is: waiting for its header (with all that it holds meanwhile) or done.
    private var machine: ProxyHeaderStateMachine
    /// The header's place on the loop's timer wheel (only `LoopTimers` uses it).
    var loopTimerSlot = LoopTimerSlot()
    /// When the connection was admitted, for the header and hand-over times (metrics).
    private var admittedAt = NIODeadline.distantFuture
    /// How another connection's admission reaches this one to shed it (`shedOnItsLoop`);
    /// let go of when the header is done with (`giveBack`).
    private var shedTarget: ShedTarget?

    init(port: Int, runtime: ProxyRuntime, context: PipelineContext) {
        self.port = port
        self.runtime = runtime
        self.configuration = runtime.configuration
        self.context = context
        self.machine = ProxyHeaderStateMachine(maximumHeaderLength: configuration.maximumHeaderLength)
        self.baseLogger = context.logger
    }

    /// Logs with the peer and port; checks the level first, as most connections log nothing.
    private func log(_ level: Logger.Level, peer: SocketAddress?, _ message: @autoclosure () -> Logger.Message) {
        guard baseLogger.logLevel <= level else { return }
        var logger = baseLogger
        logger[metadataKey: "module"] = "net_proxy"
        logger[metadataKey: "peer"] = "\(peer.map(\.logText) ?? "?")"
        logger[metadataKey: "port"] = "\(port)"
        logger.log(level: level, message())
    }

    // MARK: Events

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
        let action = machine.channelActive(
            peer: context.channel.remoteAddress,
            timer: HeaderTimer(wheel: LoopTimers.current(on: context.eventLoop), context: context),
            isTrusted: { configuration.trustedProxies.contains($0) },
            makeSlot: { address in
                let target = ShedTarget(self)
                self.shedTarget = target
                return PendingHeaders.Slot(address: address, shed: Self.shedOnItsLoop(target, eventLoop: context.eventLoop))
            }
        )
        switch action {
        case .none:
            return
        case .closePeerGone:
            // A health check that connects and leaves, say.
            statistics.record(.closedEarly, port: port)
            log(.debug, peer: nil, "the peer was gone before its connection was accepted")
            context.close(promise: nil)
        case .refuseUntrusted(let peer):
            refuse(context: context, peer: peer, outcome: .untrusted, level: .warning,
                   message: "refused a connection from an untrusted peer (not in proxy_trusted_proxies)")
        case .admit(let slot, let timer):
            admittedAt = .now()
            timer.wheel.schedule(self, at: timer.wheel.now + configuration.headerTimeLimit)
            let displaced = runtime.pending.admit(
                slot, perAddress: configuration.maxPendingHeadersPerIP, overall: configuration.maxPendingHeaders
            )
            for older in displaced {
                older.slot.shed(older.reason)
            }
        }
    }

    /// How another connection's admission reaches this one to shed it: a task on this
    /// connection's loop (even when that is the caller's, so that this stage never
    /// changes state in the middle of another connection's event). A connection whose
    /// header is done with meanwhile has let go of `target`: nothing left to shed.
    private static func shedOnItsLoop(
        _ target: ShedTarget, eventLoop: any EventLoop
    ) -> @Sendable (PendingHeaders.ShedReason) -> Void {
        let bound = NIOLoopBound(target, eventLoop: eventLoop)
        return { reason in
            bound.eventLoop.execute { bound.value.handler?.shed(reason) }
        }
    }

    /// The handler a pending slot may shed, held strongly until `giveBack` clears it,
    /// on every path out of waiting (header read, refused, closed, removed). Not a weak
    /// reference: that would give each handler a side table, and every retain and
    /// release of it the runtime's slow path.
    private final class ShedTarget {
        var handler: ProxyHeaderHandler?
        init(_ handler: ProxyHeaderHandler) { self.handler = handler }
    }

    /// Over a pending-header budget, this connection was the oldest waiting: closed
    /// unless its header arrived meanwhile. The registry has already taken its slot.
    private func shed(_ reason: PendingHeaders.ShedReason) {
        switch machine.shed() {
        case .none:
            return
        case .shed(let waiting):
            giveBack(waiting)
            // Past the global budget the sheds hit every address: one line for all of
            // them, then a summary, rather than a line per address.
            let (message, source): (String, String?) = switch reason {
            case .perAddress(let limit):
                ("shed the oldest connection waiting for its PROXY header from this address, to admit a new one (max_pending_headers_per_ip is \(limit))", nil)
            case .global(let limit):
                ("shed the oldest connection waiting for its PROXY header, to admit a new one (proxy_max_pending_headers is \(limit))", "any address")
            case .connectionLimit(let limit):
                ("shed the oldest connection waiting for its PROXY header, to admit a new one (max_connections is \(limit))", "any address")
            }
            refuse(context: waiting.timer.context, peer: waiting.peer, outcome: .shed, level: .warning,
                   message: message, reason: reason.name, metadata: ["received_bytes": "\(waiting.receivedBytes)"],
                   summarisedAs: source)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch machine.channelRead(unwrapInboundIn(data)) {
        case .needMoreData, .discard:
            return
        case .refuseInvalid(let error, let waiting):
            giveBack(waiting)
            refuse(context: context, peer: waiting.peer, outcome: .invalid, level: .warning,
                   message: "invalid PROXY header: \(error)", reason: error.reason.rawValue)
        case .handOver(let header, let remaining, let waiting):
            giveBack(waiting)
            handOver(context: context, header: header, remaining: remaining, from: waiting)
        }
    }

    func loopTimerFired() {
        switch machine.timeLimitReached() {
        case .none:
            return
        case .refuseTimeout(let waiting):
            giveBack(waiting)
            refuse(context: waiting.timer.context, peer: waiting.peer, outcome: .timeout, level: .warning,
                   message: "no complete PROXY header within \(configuration.headerTimeout) s",
                   metadata: ["received_bytes": "\(waiting.receivedBytes)"])
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        switch machine.channelInactive() {
        case .none:
            break
        case .closedEarly(let waiting):
            giveBack(waiting)
            statistics.record(.closedEarly, port: port)
            runtime.events.record(
                "the peer closed the connection before the PROXY header was complete", from: waiting.peerIP,
                level: .info,
                metadata: ["port": "\(port)", "received_bytes": "\(waiting.receivedBytes)", "peer": "\(waiting.peer.logText)"]
            )
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        switch machine.errorCaught() {
        case .close:
            log(.debug, peer: context.channel.remoteAddress, "connection error while waiting for the PROXY header: \(error)")
            context.close(promise: nil)
        case .forward:
            context.fireErrorCaught(error)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        switch machine.handlerRemoved() {
        case .none:
            return
        case .giveBack(let waiting):
            giveBack(waiting)
        }
    }

    // MARK: Outcomes

    /// The header is done with, one way or another: its pending slot (unless shed,
    /// which took it already) and its time limit go.
    private func giveBack(_ waiting: ProxyHeaderStateMachine.Waiting) {
        shedTarget?.handler = nil
        shedTarget = nil
        runtime.pending.leave(waiting.slot)
        waiting.timer.wheel.cancel(self)
    }

    private func handOver(
        context: ChannelHandlerContext, header: ProxyHeader, remaining: ByteBuffer, from waiting: ProxyHeaderStateMachine.Waiting
    ) {
        let channel = context.channel
        let peer = waiting.peer
        statistics.recordHeaderTime(port: port, nanoseconds: (NIODeadline.now() - admittedAt).nanoseconds)
        let addresses = Self.addresses(for: header, peerIP: waiting.peerIP, channel: channel)
        let outcome: ProxyStatistics.Outcome = header.command == .local
            ? .local : (header.usesRealConnectionAddresses ? .unknownAddresses : .proxied)

        guard let serviceName = configuration.portMappings[port] else {
            refuse(context: context, peer: peer, outcome: .noService, level: .warning,
                   message: "port \(port) has no entry in proxy_port_mappings; closing after the header")
            return
        }
        guard let service = self.context.service(named: serviceName, on: channel.eventLoop),
              let listener = service.listener
        else {
            refuse(context: context, peer: peer, outcome: .noService, level: .error,
                   message: "proxy_port_mappings sends port \(port) to service '\(serviceName)', which no loaded module provides")
            return
        }
        if service.acceptExecutor(forPort: port, services: self.context.services) == .luaLoop,
           channel.eventLoop !== self.context.luaLoop {
            // Only while a reload that mapped this port to a Lua service moves the port to the
            // Lua loop (the old sockets still accept until the new one is bound beside them).
            refuse(context: context, peer: peer, outcome: .noService, level: .error,
                   message: "service '\(serviceName)' now runs in Lua but this connection was accepted on another thread")
            return
        }
        switch outcome {
        case .local:
            log(.debug, peer: peer, "PROXY LOCAL header (a health check), serving with the connection's own addresses")
        case .unknownAddresses:
            log(.debug, peer: peer, "PROXY header without client addresses (\(header.family)), serving with the connection's own addresses")
        default:
            log(.debug, peer: peer, "PROXY v\(header.version.rawValue) header: client \(addresses.clientIP) port \(addresses.clientPort)")
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
            refuse(context: context, peer: peer, outcome: .handOverFailed, level: .error,
                   message: "could not hand the connection to service '\(serviceName)': \(error)")
            return
        }
        statistics.record(outcome, port: port)
        statistics.recordHandOverTime(port: port, nanoseconds: (NIODeadline.now() - admittedAt).nanoseconds)
        if remaining.readableBytes > 0 {
            context.fireChannelRead(wrapInboundOut(remaining))
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    /// Counts the refusal, logs it (identical refusals from one peer once, then
    /// summarised; or from every peer together, under `summarisedAs`) and closes.
    private func refuse(
        context: ChannelHandlerContext,
        peer: SocketAddress,
        outcome: ProxyStatistics.Outcome,
        level: Logger.Level,
        message: String,
        reason: String? = nil,
        metadata: Logger.Metadata = [:],
        summarisedAs source: String? = nil
    ) {
        statistics.record(outcome, port: port, reason: reason)
        var metadata = metadata
        metadata["port"] = "\(port)"
        metadata["peer"] = "\(peer.logText)"
        runtime.events.record(message, from: source ?? peer.ipText ?? "?", level: level, metadata: metadata)
        context.close(promise: nil)
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

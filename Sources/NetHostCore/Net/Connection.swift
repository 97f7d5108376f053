import Logging
import NIOCore
import NIOSSL

/// Told when a connection has ended, after its listener's `onDisconnect`: the layer
/// that keeps something in `Connection.listenerSlot` lets it go here.
package protocol ConnectionFinishObserver: AnyObject {
    func connectionFinished(_ connection: Connection)
}

/// One accepted connection: the value services are handed (and, through the Lua
/// runtime, the object behind Lua's `conn`). It lives on its channel's event loop and
/// must only be used there, like the channel handler that owns it.
public final class Connection: LoopTimerTarget {

    /// Unique for the life of the process, for logs.
    public let id: UInt64
    public let serviceName: String
    public let addresses: ConnectionAddresses
    /// Where the connection really came from, as the stage that accepted it learned
    /// (the PROXY header, for `net_proxy`); nil for a direct connection. The module
    /// that made it offers a typed accessor (`connection.proxyHeader`).
    public let origin: (any Sendable)?
    /// `network_settings.read_timeout`, which `setReadTimeout` may override.
    public let configuredReadTimeout: TimeAmount
    private let sendTimeout: TimeAmount
    private let maxSendBufferSize: Int
    /// Carries the connection's metadata (id, client, service, proxy) into every
    /// line. Built for each line logged, not stored: most connections never log, and
    /// an idle connection should not carry a second `Logger`.
    public var logger: Logger {
        var logger = baseLogger
        logger[metadataKey: "conn"] = "\(id)"
        logger[metadataKey: "client"] = "\(addresses.clientIP):\(addresses.clientPort)"
        logger[metadataKey: "service"] = "\(serviceName)"
        if let proxyIP = addresses.proxyIP {
            logger[metadataKey: "proxy"] = "\(proxyIP)"
        }
        return logger
    }
    private let baseLogger: Logger

    /// Logs a line with the connection's metadata. Checks the level before touching
    /// `logger`, so a line below the level costs neither the metadata nor the message.
    public func log(
        _ level: Logger.Level, _ message: @autoclosure () -> Logger.Message,
        metadata: @autoclosure () -> Logger.Metadata? = nil
    ) {
        guard baseLogger.logLevel <= level else { return }
        logger.log(level: level, message(), metadata: metadata())
    }
    public private(set) var listener: any ConnectionListener

    private let context: ChannelHandlerContext
    private let tls: TLSSettings?
    /// Whether the connection is encrypted (direct TLS, or after `startTLS`).
    public private(set) var isTLS: Bool
    private var state: State = .open
    private var readTimeout: TimeAmount?
    private var lastReadTime: NIODeadline
    /// When writes started waiting for the peer to read; nil while it keeps up.
    private var sendBlockedSince: NIODeadline?
    /// One entry on the loop's timer wheel, at the earlier of the read and send deadlines.
    private let timers: LoopTimers
    public var loopTimerSlot = LoopTimerSlot()
    private var timerDeadline: NIODeadline?
    private var isPaused = false

    /// Kept for the listener layer that serves the connection; the core never reads it.
    /// The Lua runtime keeps its userdata's registry reference here, so every callback
    /// sees the same `conn` value (modules key their session tables by it). 0: empty.
    package var listenerSlot: Int32 = 0
    /// This connection's place in its loop's list of open connections (`ConnectionTracker`).
    var trackerIndex = -1
    /// Releases what `listenerSlot` holds once the connection has ended (the Lua runtime;
    /// not a closure, so a Lua-served connection carries no extra allocation). Strong, and
    /// cleared when the connection finishes: a weak reference would give the runtime
    /// a side table, and every retain and release of it, several per Lua callback,
    /// would take the runtime's slow path.
    package var finishObserver: (any ConnectionFinishObserver)?

    private enum State {
        case open
        /// `close()` was asked for while data was still waiting to be sent.
        case closingAfterFlush
        case closed
    }

    init(
        id: UInt64,
        context: ChannelHandlerContext,
        serviceName: String,
        listener: any ConnectionListener,
        addresses: ConnectionAddresses,
        origin: (any Sendable)?,
        settings: NetworkSettings,
        logger: Logger,
        tls: TLSSettings? = nil,
        isTLS: Bool = false
    ) {
        self.tls = tls
        self.isTLS = isTLS
        self.id = id
        self.context = context
        self.serviceName = serviceName
        self.listener = listener
        self.addresses = addresses
        self.origin = origin
        self.configuredReadTimeout = settings.readTimeoutAmount
        self.sendTimeout = settings.sendTimeoutAmount
        self.maxSendBufferSize = settings.maxSendBufferSize
        self.baseLogger = logger
        self.readTimeout = configuredReadTimeout
        let timers = LoopTimers.current(on: context.eventLoop)
        self.timers = timers
        self.lastReadTime = timers.now
    }

    public var channel: Channel { context.channel }
    public var eventLoop: EventLoop { context.eventLoop }
    public var isOpen: Bool { state == .open }

    // MARK: What services call

    /// Queues bytes for sending. Returns false, and closes the connection, if
    /// they would push the send buffer past `max_send_buffer_size`.
    @discardableResult
    public func write(_ buffer: ByteBuffer) -> Bool {
        guard state == .open else { return false }
        context.writeAndFlush(NIOAny(buffer), promise: nil)
        if !channel.isWritable {
            return checkSendBuffer()
        }
        return true
    }

    @discardableResult
    public func write(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard state == .open else { return false }
        var buffer = context.channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        return write(buffer)
    }

    @discardableResult
    public func write(_ string: String) -> Bool {
        guard state == .open else { return false }
        return write(context.channel.allocator.buffer(string: string))
    }

    /// Closes after everything written so far has been sent (as Prosody does);
    /// `onDisconnect` follows. A peer that does not read for `send_timeout` is cut off.
    public func close() {
        guard state == .open else { return }
        guard bufferedBytes > 0 else {
            closeNow(reason: nil)
            return
        }
        state = .closingAfterFlush
        armSendTimeout()
        // Writability cannot tell when the queue is empty: a backlog below the high
        // watermark never made the channel unwritable, so no event would come. An empty
        // write's promise can: writes complete in order, so it fires once every byte
        // queued before it is out (or fails once the channel has gone).
        let sent = eventLoop.makePromise(of: Void.self)
        sent.futureResult.assumeIsolated().whenComplete { [self] _ in
            closeNow(reason: nil)
        }
        context.writeAndFlush(NIOAny(channel.allocator.buffer(capacity: 0)), promise: sent)
    }

    /// Stops reading from the socket until `resume()`.
    public func pause() {
        guard !isPaused else { return }
        isPaused = true
        _ = channel.setOption(ChannelOptions.autoRead, value: false)
    }

    public func resume() {
        guard isPaused else { return }
        isPaused = false
        _ = channel.setOption(ChannelOptions.autoRead, value: true)
        channel.read()
    }

    /// Hands the connection to another listener: the old one gets `onDetach`,
    /// the new one `onAttach(data)`, and all later events.
    public func setListener(_ newListener: any ConnectionListener, data: (any Sendable)? = nil) {
        let old = listener
        guard old !== newListener else { return }
        runCallback("ondetach") { try old.onDetach(self) }
        listener = newListener
        runCallback("onattach") { try newListener.onAttach(self, data: data) }
    }

    public struct TLSUnavailable: Error, CustomStringConvertible {
        public let description: String
    }

    /// Upgrades the connection to TLS (STARTTLS): what was written before goes
    /// out in plain text, everything after is encrypted. `onstatus` gets
    /// "ssl-handshake-complete" once the handshake is done. Bounded by
    /// `ssl_handshake_timeout`; past `ssl_max_handshakes_per_second` the
    /// connection is closed instead.
    public func startTLS() throws {
        guard !isTLS else { return }
        guard let tls else {
            throw TLSUnavailable(description: "STARTTLS needs a certificate: set ssl = { certificate = ..., key = ... }")
        }
        guard try tls.addServerStages(
            to: channel.pipeline.syncOperations, position: .before(context.handler), serviceName: serviceName, addresses: addresses
        ) != nil else {
            abort(reason: tls.refusalReason)  // ssl_max_handshakes_per_second reached
            return
        }
        isTLS = true
    }

    /// Sets or clears (nil) the read timeout, counted from now; at most a year
    /// (`TimeoutSeconds.maximum`).
    public func setReadTimeout(_ timeout: TimeAmount?) {
        readTimeout = timeout.map { min($0, TimeoutSeconds.maximumAmount) }
        lastReadTime = timers.now
        timerDeadline = nil  // the new timeout may be shorter than the one scheduled
        scheduleTimer()
    }

    /// The same in seconds, as Lua gives it. Infinity means as long as possible (a year),
    /// as `math.huge` never fires in Prosody; NaN and negative numbers throw.
    public func setReadTimeout(seconds: Double?) throws(InvalidTimeout) {
        setReadTimeout(try seconds.map { seconds throws(InvalidTimeout) in
            try TimeoutSeconds.timeAmount(seconds, infinity: .clampsToMaximum)
        })
    }

    /// A socket option by its Prosody name; false if unknown or refused.
    @discardableResult
    public func setOption(_ name: String, _ value: Bool) -> Bool {
        let option: ChannelOptions.Types.SocketOption
        switch name {
        case "tcp-nodelay", "tcp_nodelay", "nodelay":
            option = ChannelOptions.tcpOption(.tcp_nodelay)
        case "keepalive", "tcp-keepalive", "so_keepalive":
            option = ChannelOptions.socketOption(.so_keepalive)
        default:
            return false
        }
        do {
            try channel.syncOptions?.setOption(option, value: value ? 1 : 0)
            return true
        } catch {
            log(.debug, "setoption \(name) refused: \(error)")
            return false
        }
    }

    // MARK: Driven by ConnectionHandler

    /// The connection exists: its read timeout starts (it also bounds a TLS handshake).
    func start() {
        scheduleTimer()
    }

    /// The connection is ready for the service: at once, or after the handshake of direct TLS.
    func announceConnect() {
        guard state == .open else { return }
        runCallback("onconnect") { try listener.onConnect(self) }
    }

    func deliver(_ buffer: ByteBuffer) {
        guard state == .open else { return }
        lastReadTime = timers.now
        runCallback("onincoming") { try listener.onIncoming(self, data: buffer) }
    }

    func writabilityChanged() {
        guard channel.isWritable else {
            armSendTimeout()
            return
        }
        switch state {
        case .open:
            sendBlockedSince = nil  // the wheel entry stays; when it fires it finds nothing due
            if listener.wantsDrain {
                runCallback("ondrain") { try listener.onDrain(self) }
            }
        case .closingAfterFlush:
            // Writable need not mean empty (a low watermark above 1 byte): the close waits
            // for its write's promise, and the send timeout keeps running until then.
            break
        case .closed:
            break
        }
    }

    func status(_ status: String) {
        guard state != .closed else { return }
        runCallback("onstatus") { try listener.onStatus(self, status: status) }
    }

    /// The channel has gone: tell the listener, once.
    func finished() {
        if state != .closed {
            state = .closed
        }
        timers.cancel(self)
        timerDeadline = nil
        let finalListener = listener
        finalListener.onDisconnect(self, reason: closeReason)
        finishObserver?.connectionFinished(self)
        finishObserver = nil
    }

    /// What `onDisconnect` is told: our reason if we closed with one, else the
    /// channel's error, else nil (the peer closed).
    private(set) var closeReason: String?

    /// The channel failed (reset, broken pipe...); kept unless we already gave a reason.
    func noteChannelError(_ reason: String) {
        if closeReason == nil {
            closeReason = reason
        }
    }

    /// TLS failed. A failed handshake is logged at info with the client (once per
    /// client and reason, then summarised: scanners and old clients repeat); the
    /// reason, in words, is what `onDisconnect` is told.
    func tlsFailed(_ failure: TLSFailure) {
        let reason = failure.reason(allowed: tls?.options.versions)
        noteChannelError(reason)
        guard failure.isHandshakeFailure, let failures = tls?.handshakeFailures else {
            log(.debug, "\(reason)")
            return
        }
        var metadata: Logger.Metadata = ["service": "\(serviceName)"]
        if let proxyIP = addresses.proxyIP { metadata["proxy"] = "\(proxyIP)" }
        failures.record(reason, from: addresses.clientIP, level: .info, metadata: metadata)
    }

    /// Closes at once, discarding what was not sent. Used for errors.
    public func abort(reason: String) {
        closeNow(reason: reason)
    }

    private func closeNow(reason: String?) {
        guard state != .closed else { return }
        state = .closed
        if let reason {
            closeReason = reason
        }
        context.close(promise: nil)
    }

    // MARK: Bounds and timers

    private var bufferedBytes: Int {
        (try? channel.syncOptions?.getOption(ChannelOptions.bufferedWritableBytes)) ?? 0
    }

    private func checkSendBuffer() -> Bool {
        let buffered = bufferedBytes
        guard buffered > maxSendBufferSize else {
            armSendTimeout()
            return true
        }
        logger.warning("send buffer full, closing the connection", metadata: [
            "buffered": "\(buffered)", "limit": "\(maxSendBufferSize)",
        ])
        closeNow(reason: "send buffer full")
        return false
    }

    private func armSendTimeout() {
        guard sendBlockedSince == nil else { return }
        sendBlockedSince = timers.now
        scheduleTimer()
    }

    /// Puts the connection on the wheel at its next deadline, unless it is already
    /// there at an earlier one (firing early costs only a re-check).
    private func scheduleTimer() {
        guard state != .closed else { return }
        var next: NIODeadline?
        if let readTimeout { next = lastReadTime + readTimeout }
        if let sendBlockedSince {
            let sendDeadline = sendBlockedSince + sendTimeout
            next = next.map { min($0, sendDeadline) } ?? sendDeadline
        }
        guard let next else {
            timers.cancel(self)
            timerDeadline = nil
            return
        }
        if let timerDeadline, timerDeadline <= next { return }
        timerDeadline = next
        timers.schedule(self, at: next)
    }

    public func loopTimerFired() {
        timerDeadline = nil
        guard state != .closed else { return }
        let now = timers.now
        if let sendBlockedSince, now >= sendBlockedSince + sendTimeout,
           !channel.isWritable || state == .closingAfterFlush {
            logger.info("send timeout: the peer did not read for \(Double(sendTimeout.nanoseconds) / 1e9) s, closing")
            closeNow(reason: "send timeout")
            return
        }
        if let readTimeout, state == .open, now >= lastReadTime + readTimeout {
            var keep = false
            runCallback("onreadtimeout") { keep = try listener.onReadTimeout(self) }
            guard state == .open else { return }
            guard keep else {
                log(.debug, "read timeout, closing")
                closeNow(reason: "read timeout")
                return
            }
            lastReadTime = timers.now
        }
        scheduleTimer()
    }

    /// Runs a listener callback; an error is logged and closes this one connection.
    private func runCallback(_ name: String, _ body: () throws -> Void) {
        do {
            try body()
        } catch {
            logger.error("error in \(name) callback, closing the connection: \(ErrorDescription(error))")
            closeNow(reason: "error in \(name) callback")
        }
    }
}

/// An error whose log line says more than its description (a Lua error, its traceback).
package protocol DetailedLogDescription: Error {
    var logDescription: String { get }
}

/// Errors log with their `logDescription` (Lua errors, their traceback) or their description.
package struct ErrorDescription: CustomStringConvertible {
    let error: any Error
    package init(_ error: any Error) { self.error = error }
    package var description: String {
        if let detailed = error as? any DetailedLogDescription { return detailed.logDescription }
        return String(describing: error)
    }
}

import Logging
import NIOCore
import NIOSSL

/// One accepted connection: the object behind Lua's `conn` and the value Swift
/// services are handed. It lives on its channel's event loop and must only be
/// used there, like the channel handler that owns it.
public final class Connection: LuaUserdata {
    public static let luaTypeName = "conn"

    /// Unique for the life of the process, for logs.
    public let id: UInt64
    public let serviceName: String
    public let addresses: ConnectionAddresses
    /// The parsed PROXY header, when the connection came through `net_proxy`.
    public let origin: (any ConnectionOriginInfo)?
    public let settings: NetworkSettings
    /// Carries the connection's metadata (id, client, service, proxy) into every
    /// line. Built on first use: most connections never log, and the metadata
    /// would cost several string conversions each.
    public var logger: Logger {
        get {
            if let cached = cachedLogger { return cached }
            var logger = baseLogger
            logger[metadataKey: "conn"] = "\(id)"
            logger[metadataKey: "client"] = "\(addresses.clientIP):\(addresses.clientPort)"
            logger[metadataKey: "service"] = "\(serviceName)"
            if let proxyIP = addresses.proxyIP {
                logger[metadataKey: "proxy"] = "\(proxyIP)"
            }
            cachedLogger = logger
            return logger
        }
        set { cachedLogger = newValue }
    }
    private let baseLogger: Logger
    private var cachedLogger: Logger?

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
    private var readTimeoutTask: Scheduled<Void>?
    private var sendTimeoutTask: Scheduled<Void>?
    private var isPaused = false

    /// The Lua userdata standing for this connection, so every callback sees the
    /// same `conn` value (modules key their session tables by it). Lua loop only.
    var luaReference: LuaReference = .none
    /// Releases `luaReference` once the connection has ended.
    var onFinished: ((Connection) -> Void)?

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
        origin: (any ConnectionOriginInfo)?,
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
        self.settings = settings
        self.baseLogger = logger
        self.readTimeout = .nanoseconds(Int64(settings.readTimeout * 1_000_000_000))
        self.lastReadTime = .now()
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
    /// `onDisconnect` follows.
    public func close() {
        guard state == .open else { return }
        if bufferedBytes == 0 {
            closeNow(reason: nil)
        } else {
            state = .closingAfterFlush
            armSendTimeout()
        }
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
    /// "ssl-handshake-complete" once the handshake is done.
    public func startTLS() throws {
        guard !isTLS else { return }
        guard let tls else {
            throw TLSUnavailable(description: "STARTTLS needs a certificate: set ssl = { certificate = ..., key = ... }")
        }
        try channel.pipeline.syncOperations.addHandler(tls.makeHandler(), position: .before(context.handler))
        isTLS = true
    }

    /// Sets or clears (nil) the read timeout, in seconds.
    public func setReadTimeout(_ seconds: Double?) {
        readTimeout = seconds.map { .nanoseconds(Int64($0 * 1_000_000_000)) }
        readTimeoutTask?.cancel()
        readTimeoutTask = nil
        lastReadTime = .now()
        armReadTimeout()
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
        armReadTimeout()
    }

    /// The connection is ready for the service: at once, or after the handshake of direct TLS.
    func announceConnect() {
        guard state == .open else { return }
        runCallback("onconnect") { try listener.onConnect(self) }
    }

    func deliver(_ buffer: ByteBuffer) {
        guard state == .open else { return }
        lastReadTime = .now()
        runCallback("onincoming") { try listener.onIncoming(self, data: buffer) }
    }

    func writabilityChanged() {
        guard channel.isWritable else {
            armSendTimeout()
            return
        }
        sendTimeoutTask?.cancel()
        sendTimeoutTask = nil
        switch state {
        case .open:
            if listener.wantsDrain {
                runCallback("ondrain") { try listener.onDrain(self) }
            }
        case .closingAfterFlush:
            closeNow(reason: nil)
        case .closed:
            break
        }
    }

    func status(_ status: String) {
        guard state != .closed else { return }
        runCallback("onstatus") { try listener.onStatus(self, status: status) }
    }

    /// The channel has gone: tell the listener, once.
    func finished(reason: String?) {
        if state != .closed {
            state = .closed
        }
        readTimeoutTask?.cancel()
        sendTimeoutTask?.cancel()
        readTimeoutTask = nil
        sendTimeoutTask = nil
        let finalListener = listener
        finalListener.onDisconnect(self, reason: pendingCloseReason ?? reason)
        onFinished?(self)
        onFinished = nil
    }

    /// Why we closed, if we did, so `onDisconnect` gets our reason rather than
    /// the channel's.
    private var pendingCloseReason: String?

    /// Closes at once, discarding what was not sent. Used for errors.
    public func abort(reason: String) {
        closeNow(reason: reason)
    }

    private func closeNow(reason: String?) {
        guard state != .closed else { return }
        state = .closed
        pendingCloseReason = reason
        context.close(promise: nil)
    }

    // MARK: Bounds and timers

    private var bufferedBytes: Int {
        (try? channel.syncOptions?.getOption(ChannelOptions.bufferedWritableBytes)) ?? 0
    }

    private func checkSendBuffer() -> Bool {
        let buffered = bufferedBytes
        guard buffered > settings.maxSendBufferSize else {
            armSendTimeout()
            return true
        }
        logger.warning("send buffer full, closing the connection", metadata: [
            "buffered": "\(buffered)", "limit": "\(settings.maxSendBufferSize)",
        ])
        closeNow(reason: "send buffer full")
        return false
    }

    private func armSendTimeout() {
        guard sendTimeoutTask == nil else { return }
        let timeout = TimeAmount.nanoseconds(Int64(settings.sendTimeout * 1_000_000_000))
        sendTimeoutTask = eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(in: timeout) { [self] in
            sendTimeoutTask = nil
            guard !channel.isWritable || state == .closingAfterFlush else { return }
            logger.info("send timeout: the peer did not read for \(settings.sendTimeout) s, closing")
            closeNow(reason: "send timeout")
        }
    }

    private func armReadTimeout() {
        guard let readTimeout, state != .closed else { return }
        let deadline = lastReadTime + readTimeout
        readTimeoutTask = eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(deadline: deadline) { [self] in
            readTimeoutTask = nil
            readTimeoutFired()
        }
    }

    private func readTimeoutFired() {
        guard let readTimeout, state == .open else { return }
        let idleSince = lastReadTime
        if NIODeadline.now() < idleSince + readTimeout {
            armReadTimeout()  // data arrived since the timer was set
            return
        }
        var keep = false
        runCallback("onreadtimeout") { keep = try listener.onReadTimeout(self) }
        guard state == .open else { return }
        if keep {
            lastReadTime = .now()
            armReadTimeout()
        } else {
            log(.debug, "read timeout, closing")
            closeNow(reason: "read timeout")
        }
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

/// Lua errors log with their traceback; others with their description.
struct ErrorDescription: CustomStringConvertible {
    let error: any Error
    init(_ error: any Error) { self.error = error }
    var description: String {
        if let luaError = error as? LuaError { return luaError.fullDescription }
        return String(describing: error)
    }
}

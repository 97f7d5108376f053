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
    /// `max_send_buffer_size`, in storage (see `SendBacklog`).
    private let maxSendBufferSize: Int
    /// `max_send_buffer_total` and the process-wide count it bounds.
    private let maxSendBufferTotal: Int
    private let sendBufferBudget: SendBufferBudget
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
    /// What waits to be sent while the peer is slower than the writers, or while a
    /// STARTTLS waits or its handshake runs; nil while neither.
    private var backlog: SendBacklog?
    /// Where a STARTTLS stands. From `startTLS` until the handshake completes, writes
    /// wait in `backlog`, counted against `max_send_buffer_size` and
    /// `max_send_buffer_total`. Handed to the TLS stage instead, they would wait in its
    /// own buffer, which nothing bounds.
    private var startTLSPhase = StartTLSPhase.none
    /// What was read while `startTLSPhase` was `.draining`: for the TLS stage, once it is in.
    private var inputBeforeTLS: ByteBuffer?
    /// More than this read before the TLS stage is in closes the connection: a client
    /// that waits for the go-ahead, as STARTTLS clients must, sends nothing then, and
    /// an eager one only its hello (a few KiB).
    static let maxInputBeforeTLS = 64 * 1024
    /// Why reading is stopped, if it is (see `updateReading`).
    private var pausedByService = false
    /// Where this connection's input goes instead of `onIncoming` (`link(to:)`).
    private var linkedTarget: Connection?
    /// This connection's own send buffer is above its high-water mark.
    private var outputAboveMark = false
    /// How many other connections' buffers this one wrote past their high-water mark,
    /// and which have not drained since.
    private var blockingTargets: Int32 = 0
    private var readingStopped = false
    /// Direct writes since the channel was last asked what it holds, and the checks in
    /// a row that found it holding nothing (`afterDirectWrite`).
    private var uncheckedDirectWrites: UInt8 = 0
    private var quietChecks: UInt8 = 0
    static let directWritesPerCheck: UInt8 = 8
    /// The last write was checked and the channel held nothing of it (`afterDirectWrite`),
    /// and nothing was written since: `close()` need not ask again. A service that
    /// writes its answer and closes (whoami) asks once per connection, not twice.
    private var channelHeldNothingAfterLastWrite = false

    /// Kept for the listener layer that serves the connection; the core never reads it.
    /// The Lua runtime keeps its userdata's registry reference here, so every callback
    /// sees the same `conn` value (modules key their session tables by it). 0: empty.
    package var listenerSlot: Int32 = 0
    /// The list of open connections of this connection's loop, ordered by last read
    /// (`ConnectionTracker`), while it is in one; this connection's neighbours there.
    /// The earlier one is not retained: it holds this one (`readLater`) while linked.
    var trackedIn: ConnectionTracker.LoopConnections?
    unowned(unsafe) var readEarlier: Connection?
    var readLater: Connection?
    /// When bytes last came from the peer (or the connection started), on the loop's
    /// clock: how long it has been idle, when one must make room at `max_connections`.
    /// Apart from `lastReadTime`, which a service resets (`setReadTimeout`) without input.
    private(set) var lastReceived: NIODeadline
    /// Bytes the service got from the peer and bytes it wrote (after TLS, before any
    /// send buffer), for the metrics per service: plain adds on the connection's own
    /// loop, summed by `ConnectionTracker` when it closes (`byteCounts`).
    private(set) var bytesReceived = 0
    private(set) var bytesWritten = 0
    /// Releases what `listenerSlot` holds once the connection has ended (the Lua runtime;
    /// not a closure, so a Lua-served connection carries no extra allocation). Strong, and
    /// cleared when the connection finishes: a weak reference would give the runtime
    /// a side table, and every retain and release of it, several per Lua callback,
    /// would take the runtime's slow path.
    package var finishObserver: (any ConnectionFinishObserver)?
    /// For a direct-TLS connection relayed to the Lua loop (`LuaLoopTLSRelay`): the
    /// client's own socket, on its own loop, where socket options take effect.
    var relayedSocket: (any Channel)?

    private enum StartTLSPhase {
        case none
        /// What the service wrote before `startTLS` is still going out, in plain text
        /// (the "go ahead" the client waits for before its hello): the TLS stage is added
        /// once it is all on the socket, as Prosody starts TLS once its write buffer is
        /// empty. Reading is stopped meanwhile.
        case draining
        /// The TLS stage is in; writes wait for the handshake.
        case handshaking
    }

    /// Writes wait in the backlog for a STARTTLS, whatever the peer's pace.
    private var holdsWrites: Bool { startTLSPhase != .none }

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
        self.maxSendBufferTotal = settings.maxSendBufferTotal
        self.sendBufferBudget = settings.sendBufferBudget
        self.baseLogger = logger
        self.readTimeout = configuredReadTimeout
        let timers = LoopTimers.current(on: context.eventLoop)
        self.timers = timers
        self.lastReadTime = timers.now
        self.lastReceived = lastReadTime
    }

    public var channel: Channel { context.channel }
    public var eventLoop: EventLoop { context.eventLoop }
    public var isOpen: Bool { state == .open }

    // MARK: What services call

    /// Queues bytes for sending. Returns false, and closes the connection, if
    /// they would push the send buffer past `max_send_buffer_size`, or every
    /// connection's together past `max_send_buffer_total`.
    ///
    /// While the peer keeps up, the bytes go straight to the socket. Once it does not,
    /// later writes wait here (small ones copied together) until what the channel
    /// holds is sent, and past the high-water mark this connection stops reading, and
    /// so does the one whose input is being handled, if it is another (a relay, a
    /// broadcast), until the buffer drains below the low-water mark.
    @discardableResult
    public func write(_ buffer: ByteBuffer) -> Bool {
        guard state == .open else { return false }
        bytesWritten &+= buffer.readableBytes
        if let backlog = backlog ?? handshakeBacklog() {
            return grew(by: backlog.stage(buffer, allocator: channel.allocator))
        }
        context.writeAndFlush(NIOAny(buffer), promise: nil)
        return afterDirectWrite(of: buffer)
    }

    @discardableResult
    public func write(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard state == .open else { return false }
        bytesWritten &+= bytes.count
        if let backlog = backlog ?? handshakeBacklog() {
            return grew(by: backlog.stage(bytes: bytes, allocator: channel.allocator))
        }
        var buffer = context.channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        context.writeAndFlush(NIOAny(buffer), promise: nil)
        return afterDirectWrite(of: buffer)
    }

    @discardableResult
    public func write(_ string: String) -> Bool {
        guard state == .open else { return false }
        if backlog != nil || holdsWrites {
            var string = string
            return string.withUTF8 { write(UnsafeRawBufferPointer($0)) }
        }
        return write(context.channel.allocator.buffer(string: string))
    }

    /// The bytes this connection holds for sending, counted as `max_send_buffer_size`
    /// counts them (buffer storage plus a per-buffer overhead): 0 while its peer keeps up.
    public var queuedSendStorage: Int { backlog?.storage ?? 0 }

    /// Whether reading is stopped, by `pause()` or by backpressure.
    public var isReadingPaused: Bool { readingStopped }

    /// Closes after everything written so far has been sent (as Prosody does);
    /// `onDisconnect` follows. A peer that does not read for `send_timeout` is cut off.
    public func close() {
        guard state == .open else { return }
        if backlog == nil {
            // Behind TLS the stage may write records of its own after ours: ask.
            let held = channelHeldNothingAfterLastWrite && !isTLS ? 0 : bufferedBytes
            guard held > 0 else {
                closeNow(reason: nil)
                return
            }
            // Bytes the channel holds that no write of ours started a backlog for (TLS
            // records): an empty write's promise tells when they are out, as writes
            // complete in order.
            startBacklog(holding: held + SendBacklog.overheadPerBuffer)
            guard state == .open else { return }
        }
        state = .closingAfterFlush
        armSendTimeout()
    }

    /// Stops reading from the socket until `resume()`.
    public func pause() {
        pausedByService = true
        updateReading()
    }

    /// Reads again after `pause()` (unless the send buffers still hold it back).
    public func resume() {
        pausedByService = false
        updateReading()
    }

    /// Reads while neither the service nor a full send buffer (this connection's, or
    /// one this connection's input was written to) says to wait. Its own full buffer
    /// does not stop a connection during a STARTTLS handshake: the handshake needs the
    /// client's next messages before anything held can go out, and no input reaches the
    /// service meanwhile; it stops once the handshake is done, if still above the mark.
    /// While a STARTTLS waits for its plain text to go out, reading stops: what the
    /// client sends next is for the TLS stage, which is not in yet.
    private func updateReading() {
        guard state != .closed else { return }
        let stop = pausedByService || startTLSPhase == .draining
            || (outputAboveMark && startTLSPhase != .handshaking) || blockingTargets > 0
        guard stop != readingStopped else { return }
        readingStopped = stop
        if let options = channel.syncOptions {
            try? options.setOption(ChannelOptions.autoRead, value: !stop)
        } else {
            _ = channel.setOption(ChannelOptions.autoRead, value: !stop)
        }
        if !stop {
            channel.read()
        }
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
    ///
    /// If what was written before still waits to be sent (a slow peer), the TLS stage
    /// is added only once it is all on the socket, so the client gets the "go ahead"
    /// (SMTP's 220, XMPP's `<proceed/>`) in plain text before the handshake starts.
    /// That wait is bounded by `send_timeout`, as any wait for the peer to read; the
    /// handshake, by `ssl_handshake_timeout`, from when the stage is added. Writes made
    /// from the call on wait here, counted as any waiting write, and go out, encrypted
    /// and in order, once the handshake is done.
    public func startTLS() throws {
        guard !isTLS, state == .open else { return }
        guard let tls else {
            throw TLSUnavailable(description: "STARTTLS needs a certificate: set ssl = { certificate = ..., key = ... }")
        }
        isTLS = true
        if backlog == nil {
            // Unchecked direct writes may still be in the channel (`afterDirectWrite`
            // asks only every few writes): wait for them as for the rest. Below the TLS
            // stage they would go out in plain text all the same, but the handshake is
            // simpler to reason about once nothing of ours is left there.
            let held = bufferedBytes
            if held > 0 {
                startBacklog(holding: held + SendBacklog.overheadPerBuffer)
                guard state == .open else { return }  // over a limit: closed
            }
        }
        guard let backlog else {
            try addTLSStage(tls)
            return
        }
        log(.debug, "STARTTLS waits for what was written before it to be sent", metadata: ["buffered": "\(backlog.storage)"])
        backlog.markStartTLS()
        startTLSPhase = .draining
        updateReading()
        if !backlog.batchOut {
            pump(backlog)  // nothing out whose completion would move it on
        }
    }

    /// Adds the TLS stage (and its handshake timeout) in front of the service's stage;
    /// past `ssl_max_handshakes_per_second` closes the connection instead. What was
    /// read while the stage was not in yet goes to it first.
    private func addTLSStage(_ tls: TLSSettings) throws {
        let pipeline = channel.pipeline.syncOperations
        guard try tls.addServerStages(
            to: pipeline, position: .before(context.handler), serviceName: serviceName, addresses: addresses
        ) != nil else {
            abort(reason: tls.refusalReason)  // ssl_max_handshakes_per_second reached
            return
        }
        startTLSPhase = .handshaking
        updateReading()  // the handshake needs the client's messages
        if let input = inputBeforeTLS {
            inputBeforeTLS = nil
            // Into the TLS stage itself: firing from the pipeline's head would run the
            // stages below it (a PROXY decoder's leftovers, a logger) on it a second time.
            let tlsContext = try pipeline.context(handlerType: NIOSSLServerHandler.self)
            if let handler = tlsContext.handler as? any ChannelInboundHandler {
                handler.channelRead(context: tlsContext, data: NIOAny(input))
                handler.channelReadComplete(context: tlsContext)
            }
        }
    }

    /// STARTTLS: everything written before it is on the socket, in plain text. The TLS
    /// stage goes in now, so its handshake follows those bytes; what was written since
    /// keeps waiting, for the handshake.
    private func plaintextSent(_ backlog: SendBacklog) {
        backlog.clearStartTLSMark()
        // Nothing of ours is in the channel: the send timeout has nothing to time
        // (`ssl_handshake_timeout` bounds what comes next).
        sendBlockedSince = nil
        if !backlog.hasStaged {
            // No ondrain: the service asked for TLS; it hears "ssl-handshake-complete".
            dropBacklog()
            if state == .closingAfterFlush {
                closeNow(reason: nil)  // closed with nothing to encrypt: no handshake for it
                return
            }
        }
        guard let tls else { return }  // `startTLS` checked
        do {
            try addTLSStage(tls)
        } catch {
            logger.error("STARTTLS: adding the TLS stage failed: \(error)")
            closeNow(reason: "TLS failed: \(error)")
        }
    }

    /// Read while a STARTTLS waits for its plain text to go out (reading was stopped,
    /// but the read under way may go on): the client's hello, if it did not wait for
    /// the go-ahead, or bytes injected after the command. Not the service's input,
    /// which would take them for encrypted: they go to the TLS stage once it is in.
    private func holdForTLS(_ buffer: ByteBuffer) {
        var buffer = buffer
        guard var held = inputBeforeTLS else {
            inputBeforeTLS = buffer
            return
        }
        guard held.readableBytes + buffer.readableBytes <= Self.maxInputBeforeTLS else {
            log(.debug, "more than \(Self.maxInputBeforeTLS) bytes read before the TLS stage, closing")
            abort(reason: "too much input before the TLS handshake")
            return
        }
        inputBeforeTLS = nil  // not shared while appended to
        held.writeBuffer(&buffer)
        inputBeforeTLS = held
    }

    /// The backlog that holds writes while a STARTTLS handshake runs, started by the
    /// first of them; nil when no handshake runs. Nothing is in flight in it: its
    /// writes wait for the handshake, not for the peer, so no send timeout starts
    /// (`ssl_handshake_timeout` bounds the wait).
    private func handshakeBacklog() -> SendBacklog? {
        guard startTLSPhase == .handshaking else { return nil }
        let backlog = SendBacklog()
        self.backlog = backlog
        return backlog
    }

    /// The TLS handshake completed: what waited for it goes to the TLS stage, ahead of
    /// anything the service writes when it hears of it. Called before `status`.
    func tlsHandshakeCompleted() {
        guard startTLSPhase == .handshaking else { return }
        startTLSPhase = .none
        if let backlog, !backlog.batchOut {
            // Without a batch out, nothing else will pump it: hand over the first batch
            // (or end an empty backlog). With one out, its completion pumps the rest.
            pump(backlog)
        }
        // Above the high-water mark, reading stops now that the handshake no longer needs it.
        updateReading()
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
        if let relayedSocket {
            // The client's socket lives on another loop: set there, and refusals logged.
            let id = self.id
            let logger = self.logger
            relayedSocket.setOption(option, value: value ? 1 : 0).whenFailure { error in
                logger.debug("setoption \(name) refused: \(error)", metadata: ["conn": "\(id)"])
            }
            return true
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
        guard startTLSPhase != .draining else {
            holdForTLS(buffer)
            return
        }
        lastReadTime = timers.now
        lastReceived = lastReadTime
        bytesReceived &+= buffer.readableBytes
        trackedIn?.touch(self)
        let outer = timers.reading
        timers.reading = self
        defer { timers.reading = outer }
        if let linkedTarget {
            linkedTarget.write(buffer)
        } else {
            runCallback("onincoming") { try listener.onIncoming(self, data: buffer) }
        }
    }

    /// Prosody's `net.server.link(from, to)`: from now on what this connection
    /// receives is written to `target` as it arrives, without a call into the
    /// listener. A target above its send buffer's high-water mark stops this
    /// connection's reads until it drains (the backpressure every writer gets), so
    /// a relay of any size keeps its memory bounded. Both must live on one loop,
    /// which that backpressure needs. Ends when this connection does.
    public func link(to target: Connection) throws(ConnectionLinkError) {
        guard target.channel.eventLoop === channel.eventLoop else { throw ConnectionLinkError() }
        linkedTarget = target
    }

    func writabilityChanged() {
        guard channel.isWritable else {
            armSendTimeout()
            return
        }
        // With a backlog, its end decides (the channel may be writable while our next
        // batch still waits for the last one's promise).
        guard backlog == nil, sendBlockedSince != nil else { return }
        sendBlockedSince = nil  // the wheel entry stays; when it fires it finds nothing due
        switch state {
        case .open:
            if listener.wantsDrain {
                runCallback("ondrain") { try listener.onDrain(self) }
            }
        case .closingAfterFlush, .closed:
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
        dropBacklog()
        timers.cancel(self)
        timerDeadline = nil
        // Two connections linked both ways hold each other until one has gone.
        linkedTarget = nil
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
        dropBacklog()
        inputBeforeTLS = nil
        context.close(promise: nil)
    }

    // MARK: Bounds and timers

    private var bufferedBytes: Int {
        (try? channel.syncOptions?.getOption(ChannelOptions.bufferedWritableBytes)) ?? 0
    }

    /// After a write that went straight to the channel: if the socket did not take all
    /// of it, the channel holds the buffer, and a backlog starts.
    private func afterDirectWrite(of buffer: ByteBuffer) -> Bool {
        guard state == .open else { return false }
        // Asking the channel what it holds goes through a chain of dynamic casts and
        // costs more than a small write itself. So once `directWritesPerCheck` checks
        // in a row found the peer keeping up, only every `directWritesPerCheck`th write
        // asks (and any write that leaves the channel past its high-water mark): in
        // between the channel holds at most that many writes of ours, under its mark.
        channelHeldNothingAfterLastWrite = false
        if channel.isWritable, quietChecks >= Self.directWritesPerCheck {
            uncheckedDirectWrites &+= 1
            guard uncheckedDirectWrites >= Self.directWritesPerCheck else { return true }
        }
        uncheckedDirectWrites = 0
        let held = bufferedBytes
        channelHeldNothingAfterLastWrite = held == 0
        quietChecks = held > 0 ? 0 : min(quietChecks &+ 1, Self.directWritesPerCheck)
        guard held > 0 else {
            if !channel.isWritable { armSendTimeout() }
            return true
        }
        // The channel keeps the whole storage until the last byte is out (or, behind
        // TLS, the records it made of it); count the larger.
        startBacklog(holding: max(SendBacklog.cost(of: buffer), held + SendBacklog.overheadPerBuffer))
        return state == .open
    }

    /// The channel holds bytes of ours (`cost`, counted): later writes wait in a
    /// backlog until an empty write behind them tells that they are out.
    private func startBacklog(holding cost: Int) {
        let backlog = SendBacklog()
        self.backlog = backlog
        backlog.holdInFlight(cost)
        armSendTimeout()
        guard grew(by: cost) else { return }
        let sent = eventLoop.makePromise(of: Void.self)
        sent.futureResult.assumeIsolated().whenComplete { [self] result in
            batchCompleted(backlog, result)
        }
        context.writeAndFlush(NIOAny(channel.allocator.buffer(capacity: 0)), promise: sent)
    }

    /// The backlog grew by `bytes` of storage: enforce the limits, then the high-water
    /// mark. False if the connection was closed for it.
    private func grew(by bytes: Int) -> Bool {
        guard let backlog, bytes > 0 else { return state == .open }
        let storage = backlog.storage
        guard storage <= maxSendBufferSize else {
            logger.warning("send buffer full, closing the connection", metadata: [
                "buffered": "\(storage)", "limit": "\(maxSendBufferSize)",
            ])
            closeNow(reason: "send buffer full")
            return false
        }
        let more = storage - backlog.reserved
        if more > 0 {
            guard sendBufferBudget.reserve(more, limit: maxSendBufferTotal) else {
                sendBufferBudget.countShed()
                logger.warning("send buffers of all connections over max_send_buffer_total, closing this one", metadata: [
                    "buffered": "\(storage)", "total": "\(sendBufferBudget.used)", "limit": "\(maxSendBufferTotal)",
                ])
                closeNow(reason: "send buffers over max_send_buffer_total")
                return false
            }
            backlog.reserved += more
        }
        if storage > highWaterMark {
            if !outputAboveMark {
                outputAboveMark = true
                updateReading()
            }
            // The connection whose input is being handled wrote here: it waits too.
            if let writer = timers.reading, writer !== self,
               !backlog.waitingWriters.contains(where: { $0 === writer }) {
                backlog.waitingWriters.append(writer)
                writer.blockingTargets += 1
                writer.updateReading()
            }
        }
        return true
    }

    /// Pauses reading above this many bytes of send buffer...
    private var highWaterMark: Int { Self.highWaterMark(maxSendBufferSize: maxSendBufferSize) }
    /// ...and reads again at or below this many.
    private var lowWaterMark: Int { highWaterMark / 4 }

    /// 64 KiB, as NIO's and nginx's defaults; half of `max_send_buffer_size` if that is smaller.
    static func highWaterMark(maxSendBufferSize: Int) -> Int {
        min(64 * 1024, max(1, maxSendBufferSize / 2))
    }

    /// The batch the channel held is out: hand it the next one, or end the backlog.
    private func batchCompleted(_ completed: SendBacklog, _ result: Result<Void, any Error>) {
        guard let backlog, backlog === completed else { return }
        releaseStorage(backlog.batchDone(), of: backlog)
        guard case .success = result, state != .closed else {
            dropBacklog()
            return
        }
        sendBlockedSince = nil  // progress: the send timeout counts from here again
        pump(backlog)
    }

    /// Hands the channel the next batch, looping while batches complete at once.
    private func pump(_ backlog: SendBacklog) {
        guard !backlog.pumping else {
            backlog.pumpAgain = true
            return
        }
        backlog.pumping = true
        defer { backlog.pumping = false }
        repeat {
            backlog.pumpAgain = false
            // During a STARTTLS handshake the staged writes wait for it (`tlsHandshakeCompleted`).
            guard self.backlog === backlog, state != .closed, !backlog.batchOut, startTLSPhase != .handshaking else { return }
            let batch = backlog.takeBatch()
            guard let last = batch.last else {
                // Before a STARTTLS mark, nothing more to take means the plain text is out.
                if startTLSPhase == .draining {
                    plaintextSent(backlog)
                } else {
                    endBacklog(backlog)
                }
                return
            }
            armSendTimeout()
            checkLowWaterMark(backlog)
            let sent = eventLoop.makePromise(of: Void.self)
            sent.futureResult.assumeIsolated().whenComplete { [self] result in
                batchCompleted(backlog, result)
            }
            for buffer in batch.dropLast() {
                context.write(NIOAny(buffer), promise: nil)
            }
            context.writeAndFlush(NIOAny(last), promise: sent)
        } while backlog.pumpAgain
    }

    /// Everything waiting has been sent: the peer keeps up again.
    private func endBacklog(_ backlog: SendBacklog) {
        dropBacklog()
        if channel.isWritable {
            sendBlockedSince = nil
        }
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

    /// Once the buffer is at or below its low-water mark, this connection and the
    /// writers that waited for it read again.
    private func checkLowWaterMark(_ backlog: SendBacklog) {
        guard backlog.storage <= lowWaterMark else { return }
        releaseWaiters(of: backlog)
    }

    private func releaseWaiters(of backlog: SendBacklog) {
        let writers = backlog.waitingWriters
        backlog.waitingWriters = []
        for writer in writers {
            writer.blockingTargets -= 1
            writer.updateReading()
        }
        if outputAboveMark {
            outputAboveMark = false
            updateReading()
        }
    }

    private func releaseStorage(_ bytes: Int, of backlog: SendBacklog) {
        let released = min(bytes, backlog.reserved)
        backlog.reserved -= released
        sendBufferBudget.release(released)
    }

    /// Forgets the backlog (sent, or the connection has gone): its reservation goes
    /// back to the budget and the writers waiting for it read again.
    private func dropBacklog() {
        guard let backlog else { return }
        self.backlog = nil
        _ = backlog.clear()
        releaseStorage(backlog.reserved, of: backlog)
        releaseWaiters(of: backlog)
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
           backlog != nil || !channel.isWritable || state == .closingAfterFlush {
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

/// `link(to:)` between connections on different event loops.
public struct ConnectionLinkError: Error, CustomStringConvertible {
    public var description: String {
        "cannot link connections that live on different event loops (a Lua connection and a Swift service's)"
    }
}

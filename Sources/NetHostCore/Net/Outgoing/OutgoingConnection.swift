import Logging
import NIOCore
import NIOSSL
import Synchronization

/// Told what becomes of an outgoing connection that never got a `Connection`: the
/// attempt failed (refused, timed out, the name did not resolve) or the service
/// closed it first. Once connected, the usual `ConnectionListener` callbacks follow.
public protocol OutgoingConnectionListener: ConnectionListener {
    /// `reason` is nil when the service closed the connection before it was made.
    func onConnectFailed(_ outgoing: OutgoingConnection, reason: String?)
}

/// An outgoing connection, from the moment it is asked for: `net.server.addclient`
/// in Lua, `ModuleContext.connect` in Swift. Lives on one event loop and must only
/// be used there.
///
/// Why an object of its own rather than a `Connection` with a pending state: a
/// `Connection` is made from its channel's handler context, and every one of its
/// methods goes through that context; a connection asked for has no channel yet,
/// and may have several in turn (one per address tried). Teaching `Connection` to
/// live without a context would touch all of it. So this object stands for the
/// connection until an attempt succeeds: it queues what is written meanwhile
/// (counted against `max_send_buffer_size` and `max_send_buffer_total` as a send
/// buffer is), remembers `pause()`, and a `close()` cancels. Once the `Connection`
/// exists, everything goes to it. Lua's `conn` for an outgoing connection is this
/// object, and the `Connection` shows it to Lua callbacks (`onBind`), so a module
/// sees the one value `addclient` returned, as Prosody's `net.connect` relies on.
public final class OutgoingConnection {
    private static let nextID = Atomic<UInt64>(1)

    /// For logs (`out=`); not a `Connection.id`.
    public let id: UInt64
    /// What was asked for: a name or an address, and the port.
    public let host: String
    public let port: Int
    /// Shown in logs as a connection's service is.
    public let serviceName: String
    public let eventLoop: any EventLoop
    /// Who hears of the connection; `setListener` changes it.
    public private(set) var listener: any ConnectionListener
    /// The connection, once connected (nil before, and after it has ended).
    public private(set) var connection: Connection?
    /// Its addresses, kept once it has ended.
    public private(set) var finalAddresses: ConnectionAddresses?

    private let settings: NetworkSettings
    private let transport: any OutgoingTransport
    private let tlsOptions: OutgoingTLSOptions?
    private var tlsContext: NIOSSLContext?
    private let baseLogger: Logger
    /// Called once the `Connection` exists, before any callback hears of it (the Lua
    /// runtime points the connection's Lua value at this object's).
    package var onBind: ((Connection) -> Void)?
    /// Called, besides an `OutgoingConnectionListener`'s `onConnectFailed`, when it
    /// ends without a `Connection` (the Lua runtime calls the Lua listener's
    /// `ondisconnect` with its `conn`, whichever listener is current).
    package var onFailed: ((OutgoingConnection, String?) -> Void)?

    private enum State {
        case idle, resolving, connecting, connected
        /// Failed, closed before it was made, or the connection has ended.
        case ended
    }
    private var state = State.idle
    private var candidates: [SocketAddress] = []
    private var nextCandidate = 0
    private var attempt: OutgoingAttempt?
    /// The connect timeout of the attempt under way, then the TLS handshake's.
    private var attemptTimeout: Scheduled<Void>?
    /// The channel whose stages are in, while its TLS handshake runs (no `Connection` shown yet).
    private var installed: (any Channel)?
    /// Bumped for each attempt: a late answer to an attempt given up finds it changed.
    private var generation = 0
    private var lastError: String?
    /// Written before the connection was made, in order.
    private var queued: [ByteBuffer] = []
    private var queuedStorage = 0
    private var pausedByService = false

    /// Starts connecting `host` (a name, or an IPv6 or IPv4 address, which skips
    /// resolution) on `eventLoop`, which must be the loop this is called on.
    /// Callbacks come on later turns of the loop, never from within this call.
    public init(
        host: String,
        port: Int,
        listener: any ConnectionListener,
        serviceName: String = "outgoing",
        settings: NetworkSettings,
        tls: OutgoingTLSOptions? = nil,
        transport: any OutgoingTransport = PosixOutgoingTransport(),
        eventLoop: any EventLoop,
        logger: Logger
    ) {
        eventLoop.preconditionInEventLoop()
        self.id = Self.nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        self.host = host
        self.port = port
        self.listener = listener
        self.serviceName = serviceName
        self.settings = settings
        self.tlsOptions = tls
        self.transport = transport
        self.eventLoop = eventLoop
        self.baseLogger = logger
    }

    /// Begins. Separate from `init` so the Lua layer can set `onBind` first.
    public func start() {
        guard case .idle = state else { return }
        state = .resolving
        // On the next turn: the caller gets the object before anything can fail.
        eventLoop.assumeIsolated().execute { [self] in
            guard case .resolving = state else { return }
            if let literal = HostResolution.literal(host, port: port) {
                resolved(.success([literal]))
            } else {
                transport.resolve(host: host, port: port, on: eventLoop).assumeIsolated().whenComplete { [self] result in
                    resolved(result)
                }
            }
        }
    }

    var logger: Logger {
        var logger = baseLogger
        logger[metadataKey: "out"] = "\(id)"
        logger[metadataKey: "target"] = "\(host):\(port)"
        logger[metadataKey: "service"] = "\(serviceName)"
        if let connection { logger[metadataKey: "conn"] = "\(connection.id)" }
        return logger
    }

    /// Whether it may still connect (or is connected and open).
    public var isOpen: Bool {
        switch state {
        case .idle, .resolving, .connecting: return true
        case .connected: return connection?.isOpen ?? false
        case .ended: return false
        }
    }

    /// What it holds for sending, counted as `Connection.queuedSendStorage` counts it.
    public var queuedSendStorage: Int { connection?.queuedSendStorage ?? queuedStorage }

    /// The peer's address once connected; before, the host and port asked for.
    public var peerIP: String { (connection?.addresses ?? finalAddresses)?.clientIP ?? host }
    public var peerPort: Int { (connection?.addresses ?? finalAddresses)?.clientPort ?? port }

    /// Whether TLS was asked for (before the connection is made) or is on.
    public var isTLS: Bool { connection?.isTLS ?? (tlsOptions != nil) }

    // MARK: What services call

    @discardableResult
    public func write(_ buffer: ByteBuffer) -> Bool {
        switch state {
        case .connected:
            return connection?.write(buffer) ?? false
        case .ended:
            return false
        case .idle, .resolving, .connecting:
            return queue(buffer)
        }
    }

    @discardableResult
    public func write(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if case .connected = state, let connection { return connection.write(bytes) }
        var buffer = ByteBufferAllocator().buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        return write(buffer)
    }

    @discardableResult
    public func write(_ string: String) -> Bool {
        if case .connected = state, let connection { return connection.write(string) }
        return write(ByteBuffer(string: string))
    }

    /// Connected: closes after what was written is sent. Before: gives up the attempt and
    /// what was written, and the listener hears `onConnectFailed` with no reason.
    public func close() {
        switch state {
        case .connected:
            connection?.close()
        case .ended:
            return
        case .idle, .resolving, .connecting:
            end(reason: nil)
        }
    }

    public func pause() {
        pausedByService = true
        connection?.pause()
    }

    public func resume() {
        pausedByService = false
        connection?.resume()
    }

    /// Before the connection is made: who will hear of it. After: `Connection.setListener`.
    public func setListener(_ newListener: any ConnectionListener, data: (any Sendable)? = nil) {
        if let connection {
            connection.setListener(newListener, data: data)
        } else {
            listener = newListener
        }
    }

    // MARK: Connecting

    private func resolved(_ result: Result<[SocketAddress], any Error>) {
        guard case .resolving = state else { return }
        switch result {
        case .failure(let error):
            end(reason: OutgoingFailure.describe(error))
        case .success(let addresses):
            candidates = addresses
            state = .connecting
            logger.debug("connecting", metadata: ["addresses": "\(addresses.count)"])
            guard let tlsOptions, tlsContext == nil else {
                tryNext()
                return
            }
            transport.clientTLSContext(tlsOptions, on: eventLoop).assumeIsolated().whenComplete { [self] result in
                guard case .connecting = state else { return }
                switch result {
                case .success(let context):
                    tlsContext = context
                    tryNext()
                case .failure(let error):
                    end(reason: "TLS set-up failed: \(error)")
                }
            }
        }
    }

    /// Tries the next address, or gives up with the last attempt's reason.
    private func tryNext() {
        guard case .connecting = state else { return }
        guard nextCandidate < candidates.count else {
            end(reason: lastError ?? "no address to connect to")
            return
        }
        let address = candidates[nextCandidate]
        nextCandidate += 1
        generation += 1
        let current = generation
        let attempt = transport.connect(
            to: address, on: eventLoop, settings: settings, readSize: settings.readSize ?? listener.defaultReadSize
        )
        self.attempt = attempt
        // On the loop's clock, so an embedded loop drives it in tests.
        attemptTimeout = eventLoop.assumeIsolated().scheduleTask(in: settings.connectTimeoutAmount) { [self] in
            attemptTimedOut(current, address: address)
        }
        attempt.channel.assumeIsolated().whenComplete { [self] result in
            attemptEnded(current, address: address, result)
        }
    }

    private func attemptTimedOut(_ attemptGeneration: Int, address: SocketAddress) {
        guard attemptGeneration == generation, case .connecting = state else { return }
        lastError = "connection timed out"
        logger.debug("connect attempt timed out", metadata: ["address": "\(address)"])
        generation += 1  // its late answer is ignored (and its channel closed)
        attempt?.cancel()
        attempt = nil
        attemptTimeout = nil
        tryNext()
    }

    private func attemptEnded(_ attemptGeneration: Int, address: SocketAddress, _ result: Result<any Channel, any Error>) {
        guard attemptGeneration == generation, case .connecting = state else {
            if case .success(let channel) = result { channel.close(promise: nil) }  // given up meanwhile
            return
        }
        attemptTimeout?.cancel()
        attemptTimeout = nil
        attempt = nil
        switch result {
        case .failure(let error):
            lastError = OutgoingFailure.describe(error)
            logger.debug("connect attempt failed", metadata: ["address": "\(address)", "reason": "\(lastError ?? "")"])
            tryNext()
        case .success(let channel):
            do {
                try install(on: channel)
            } catch {
                installed = nil
                attemptTimeout?.cancel()
                attemptTimeout = nil
                channel.close(promise: nil)
                lastError = "\(error)"
                tryNext()
            }
        }
    }

    /// TLS handshakes are bounded as the server's are (`ssl_handshake_timeout`, 60 s).
    static let defaultTLSHandshakeTimeout: Double = 60

    private func handshakeTimedOut(_ channel: any Channel) {
        guard case .connecting = state, installed === channel else { return }
        end(reason: "TLS handshake timed out")
    }

    /// The socket is connected: the stages a service's connection has, then reading on.
    private func install(on channel: any Channel) throws {
        let pipeline = channel.pipeline.syncOperations
        installed = channel
        if let tlsContext {
            // SNI and the name checked: the host asked for, unless it is an address.
            let name = tlsOptions?.serverName ?? (HostResolution.literal(host, port: port) == nil ? host : nil)
            try pipeline.addHandler(NIOSSLClientHandler(context: tlsContext, serverHostname: name))
            let seconds = settings.tlsHandshakeTimeout ?? Self.defaultTLSHandshakeTimeout
            let timeout = (try? TimeoutSeconds.timeAmount(seconds, infinity: .clampsToMaximum)) ?? .seconds(60)
            attemptTimeout = eventLoop.assumeIsolated().scheduleTask(in: timeout) { [self] in handshakeTimedOut(channel) }
        }
        // Reading on before the service's stage goes in: the stage's `onconnect` may
        // pause, and that must stay. Nothing is read before this turn of the loop ends.
        try channel.syncOptions?.setOption(ChannelOptions.autoRead, value: true)
        try pipeline.addHandler(ConnectionHandler(
            serviceName: serviceName, listener: OutgoingBinding(self), settings: settings, logger: baseLogger,
            startsWithTLS: tlsContext != nil
        ))
    }

    /// The `Connection` exists and a callback is about to tell of it: hand over. The
    /// listener to tell, or nil if this connection is not (or no longer) ours to show:
    /// it was given up (closed by the service, its handshake timed out) meanwhile.
    fileprivate func bound(_ connection: Connection) -> (any ConnectionListener)? {
        if self.connection === connection { return listener }
        guard self.connection == nil, case .connecting = state, installed === connection.channel else {
            connection.abort(reason: "given up before it was connected")
            return nil
        }
        bind(connection)
        return listener
    }

    private func bind(_ connection: Connection) {
        state = .connected
        installed = nil
        attemptTimeout?.cancel()
        attemptTimeout = nil
        self.connection = connection
        onBind?(connection)
        onBind = nil
        onFailed = nil
        if pausedByService { connection.pause() }
        let pending = queued
        releaseQueue()
        for buffer in pending {
            guard connection.write(buffer) else { break }  // over a limit: closed
        }
    }

    /// The connection has ended: let it go (it holds this object through its listener).
    fileprivate func connectionFinished(_ connection: Connection) {
        guard self.connection === connection else { return }
        finalAddresses = connection.addresses
        self.connection = nil
        state = .ended
    }

    private func queue(_ buffer: ByteBuffer) -> Bool {
        let cost = SendBacklog.cost(of: buffer)
        guard queuedStorage + cost <= settings.maxSendBufferSize else {
            logger.warning("send buffer full before the connection was made, giving up", metadata: [
                "buffered": "\(queuedStorage + cost)", "limit": "\(settings.maxSendBufferSize)",
            ])
            end(reason: "send buffer full")
            return false
        }
        guard settings.sendBufferBudget.reserve(cost, limit: settings.maxSendBufferTotal) else {
            settings.sendBufferBudget.countShed()
            logger.warning("send buffers of all connections over max_send_buffer_total, giving up this one")
            end(reason: "send buffers over max_send_buffer_total")
            return false
        }
        queued.append(buffer)
        queuedStorage += cost
        return true
    }

    private func releaseQueue() {
        settings.sendBufferBudget.release(queuedStorage)
        queued = []
        queuedStorage = 0
    }

    /// Gives up before a connection was made; the listener hears of it on the next turn
    /// of the loop (as a connection's `onDisconnect` comes after the close that caused it).
    private func end(reason: String?) {
        switch state {
        case .connected, .ended: return
        case .idle, .resolving, .connecting: break
        }
        state = .ended
        generation += 1
        attemptTimeout?.cancel()
        attemptTimeout = nil
        attempt?.cancel()
        attempt = nil
        installed?.close(promise: nil)
        installed = nil
        releaseQueue()
        onBind = nil
        let onFailed = self.onFailed
        self.onFailed = nil
        if let reason {
            logger.info("could not connect: \(reason)")
        } else {
            logger.debug("closed before it was connected")
        }
        eventLoop.assumeIsolated().execute { [self] in
            (listener as? any OutgoingConnectionListener)?.onConnectFailed(self, reason: reason)
            onFailed?(self, reason)
        }
    }
}

/// The listener of an outgoing connection's `Connection` until the service sets
/// another: binds it to its `OutgoingConnection` before the first callback, then
/// passes every callback to the outgoing connection's listener of the moment.
final class OutgoingBinding: ConnectionListener {
    private let outgoing: NIOLoopBound<OutgoingConnection>
    let defaultReadSize: Int

    init(_ outgoing: OutgoingConnection) {
        self.outgoing = NIOLoopBound(outgoing, eventLoop: outgoing.eventLoop)
        self.defaultReadSize = outgoing.listener.defaultReadSize
    }

    /// The listener may change before the connection is made; ask for drains always.
    var wantsDrain: Bool { true }

    /// A connection given up on meanwhile was aborted and gets no callbacks: its
    /// listener has heard `onConnectFailed` (or Lua's `ondisconnect`) already.
    private func bound(_ connection: Connection) -> (any ConnectionListener)? {
        outgoing.value.bound(connection)
    }

    func onConnect(_ connection: Connection) throws { try bound(connection)?.onConnect(connection) }
    func onIncoming(_ connection: Connection, data: ByteBuffer) throws {
        try bound(connection)?.onIncoming(connection, data: data)
    }
    func onDisconnect(_ connection: Connection, reason: String?) {
        guard let listener = bound(connection) else { return }
        listener.onDisconnect(connection, reason: reason)
        outgoing.value.connectionFinished(connection)
    }
    func onDrain(_ connection: Connection) throws {
        guard let listener = bound(connection), listener.wantsDrain else { return }
        try listener.onDrain(connection)
    }
    func onReadTimeout(_ connection: Connection) throws -> Bool { try bound(connection)?.onReadTimeout(connection) ?? false }
    func onStatus(_ connection: Connection, status: String) throws { try bound(connection)?.onStatus(connection, status: status) }
    func onDetach(_ connection: Connection) throws { try bound(connection)?.onDetach(connection) }
    func onAttach(_ connection: Connection, data: (any Sendable)?) throws {
        try bound(connection)?.onAttach(connection, data: data)
    }
}

import Logging
import NetHostLogging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One port to open: which service it is for, where, and how to set up each
/// accepted connection.
public struct ListenRequest: Sendable {
    public let serviceName: String
    public let interface: String
    public let port: Int
    /// Where accepted connections live, one listening socket each: the Lua loop for
    /// Lua services, the other loops for Swift ones (see `NetHostServer`).
    public let loops: [any EventLoop]
    public let settings: NetworkSettings
    /// Sets up an accepted connection's pipeline.
    public let initializeChild: @Sendable (any Channel) -> EventLoopFuture<Void>
    /// Listening sockets already bound to this address (handed over by the NetHost
    /// this one took over from, or passed by systemd): adopted instead of binding.
    public let inherited: [InheritedListener]

    public init(
        serviceName: String,
        interface: String,
        port: Int,
        loops: [any EventLoop],
        settings: NetworkSettings,
        inherited: [InheritedListener] = [],
        initializeChild: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>
    ) {
        self.serviceName = serviceName
        self.interface = interface
        self.port = port
        self.loops = loops
        self.settings = settings
        self.inherited = inherited
        self.initializeChild = initializeChild
    }

    public var address: ListenAddress { ListenAddress(interface: interface, port: port) }
}

/// Why a port did not open, in words an operator can act on.
public struct ListenError: Error, CustomStringConvertible, Sendable {
    public let serviceName: String
    public let interface: String
    public let port: Int
    public let reason: String

    public var description: String {
        "could not listen on port \(port) of interface \(interface) for service '\(serviceName)': \(reason)"
    }

    /// `service` cannot have a port that `other` is configured on already.
    public static func clash(_ service: String, with other: String, interface: String, port: Int) -> ListenError {
        ListenError(serviceName: service, interface: interface, port: port,
                    reason: "service '\(other)' is already configured on this port")
    }
}

/// Opens and closes the listening sockets. Ports are only ever bound here.
public final class PortManager: Sendable {
    private let group: any EventLoopGroup
    private let logger: Logger
    private struct Bound {
        let request: ListenRequest
        /// One listening socket per event loop of the request's loops (see `bindOnEveryLoop`).
        let channels: [any Channel]
        /// A descriptor of each distinct socket, kept besides the channels' own: what a
        /// takeover hands to the next process (NIO does not show a channel's
        /// descriptor), and what lets `replace` move a socket to other loops without
        /// closing it. Closed only when the port closes.
        let sockets: [Int32]
        /// Whether more sockets may join the port (SO_REUSEPORT): not for sockets
        /// systemd holds, which would be lost, queue and all, at the next restart.
        let growable: Bool
    }
    private let bound = NIOLockedValueBox<[Bound]>([])
    /// Whether listeners accept; off while a takeover waits for the old process to
    /// stop accepting on the same sockets (`holdAccepting`).
    private let accepting = NIOLockedValueBox<Bool>(true)
    /// Failed accepts (out of file descriptors), logged once per listener until the next summary.
    private let acceptErrors: RepeatedEventLog

    public init(group: any EventLoopGroup, logger: Logger) {
        self.group = group
        self.logger = logger
        self.acceptErrors = RepeatedEventLog(logger: logger, sourceLabel: "listener")
    }

    /// Logs the summaries of accept errors that repeated.
    public func flushSummaries() { acceptErrors.flush() }

    /// Opens every requested port. Requests that collide (two services on one
    /// port and interface) and ports that cannot be opened are reported; the rest open.
    public func open(_ requests: [ListenRequest]) async -> [ListenError] {
        var errors: [ListenError] = []
        var accepted: [ListenRequest] = []
        for request in requests {
            if let clash = (accepted + currentRequests).first(where: { $0.address.needsSameSocket(as: request.address) }) {
                if clash.serviceName == request.serviceName {
                    continue  // the same port listed twice for one service
                }
                let failure = ListenError.clash(request.serviceName, with: clash.serviceName,
                                                 interface: request.interface, port: request.port)
                logger.error("\(failure)")
                errors.append(failure)
                continue
            }
            accepted.append(request)
        }
        for request in accepted {
            do {
                let (channels, sockets) = try await bindOnEveryLoop(request)
                let growable = request.inherited.allSatisfy { $0.handed != nil }
                bound.withLockedValue { $0.append(Bound(request: request, channels: channels, sockets: sockets, growable: growable)) }
                let address = channels.first?.localAddress.map(\.logText) ?? "\(request.interface):\(request.port)"
                if request.inherited.isEmpty {
                    logger.info("listening for service '\(request.serviceName)' on \(address)")
                } else {
                    logger.info("listening for service '\(request.serviceName)' on \(address) through \(sockets.count) inherited socket(s)")
                }
            } catch {
                errors.append(failure(request, error))
            }
        }
        return errors
    }

    /// Moves listeners onto other loops (a reload changed where a port's connections
    /// must live): each request takes the place of the listener its service has on
    /// the same interface and port, or opens as new if there is none. The sockets
    /// stay: new channels on the new loops adopt them before the old channels close,
    /// so the port never refuses a connection and none queued is lost. Established
    /// connections are untouched.
    public func replace(_ requests: [ListenRequest]) async -> [ListenError] {
        var errors: [ListenError] = []
        for request in requests {
            let current = bound.withLockedValue { bound in
                bound.first {
                    $0.request.serviceName == request.serviceName && $0.request.interface == request.interface
                        && $0.request.port == request.port
                }
            }
            guard let current, let oldFirst = current.channels.first else {
                errors += await open([request])
                continue
            }
            let channels: [any Channel]
            let sockets: [Int32]
            do {
                // Paused until the old channels are closed: NIO expects a readable
                // listener to have a connection for it, which two acceptors of one
                // socket cannot promise each other.
                (channels, sockets) = try await attach(current.sockets, growable: current.growable, for: request, paused: true)
            } catch {
                errors.append(failure(request, error))
                continue
            }
            let swapped = bound.withLockedValue { bound -> Bool in
                guard let index = bound.firstIndex(where: { $0.channels.first === oldFirst }) else { return false }
                bound[index] = Bound(request: request, channels: channels, sockets: sockets, growable: current.growable)
                return true
            }
            guard swapped else {
                // Closed meanwhile (a shutdown): the port is not wanted any more.
                for channel in channels { channel.close(promise: nil) }
                for socket in sockets where !current.sockets.contains(socket) { _ = systemClose(socket) }
                continue
            }
            try? await EventLoopFuture.andAllComplete(current.channels.map { $0.close() }, on: group.next()).get()
            // Connections that came meanwhile waited in the sockets' queues.
            if accepting.withLockedValue({ $0 }) { await Self.setAccepting(true, on: channels) }
            let address = channels.first?.localAddress.map(\.logText) ?? "\(request.interface):\(request.port)"
            logger.info("listening for service '\(request.serviceName)' on \(address), now accepting on \(channels.count) event loop(s)")
        }
        return errors
    }

    /// The listening sockets to hand to a NetHost that takes over, each once, with
    /// what it is for. The descriptors stay this process's (sending passes copies).
    public func handOver() -> [(listener: HandedListener, descriptor: Int32)] {
        bound.withLockedValue { bound in
            var seen: Set<UInt64> = []
            var result: [(listener: HandedListener, descriptor: Int32)] = []
            for entry in bound {
                for socket in entry.sockets {
                    guard let identity = ListeningSocket.identity(of: socket), seen.insert(identity).inserted,
                          let boundPort = ListeningSocket.localAddress(of: socket)?.port else { continue }
                    let listener = HandedListener(
                        service: entry.request.serviceName, interface: entry.request.interface,
                        port: entry.request.port, boundPort: boundPort
                    )
                    result.append((listener, socket))
                }
            }
            return result
        }
    }

    private func failure(_ request: ListenRequest, _ error: any Error) -> ListenError {
        let failure = ListenError(
            serviceName: request.serviceName, interface: request.interface, port: request.port,
            reason: Self.reason(for: error)
        )
        logger.error("\(failure)")
        return failure
    }

    /// The port actually bound for a service (useful when a config asks for port 0).
    public func boundAddresses(of serviceName: String) -> [SocketAddress] {
        bound.withLockedValue { bound in
            bound.filter { $0.request.serviceName == serviceName }.compactMap { $0.channels.first?.localAddress }
        }
    }

    /// What is listening now.
    public var openListeners: [ListenRequest] {
        bound.withLockedValue { $0.map(\.request) }
    }

    /// Closes the listening sockets of the given services (all if nil); open connections stay.
    public func close(services: Set<String>? = nil) -> EventLoopFuture<Void> {
        close { services?.contains($0.serviceName) ?? true }
    }

    /// Closes the listening sockets whose request matches; open connections stay.
    public func close(where matches: (ListenRequest) -> Bool) -> EventLoopFuture<Void> {
        let closing = bound.withLockedValue { bound -> [Bound] in
            let (closing, keeping) = bound.reduce(into: ([Bound](), [Bound]())) { result, entry in
                if matches(entry.request) {
                    result.0.append(entry)
                } else {
                    result.1.append(entry)
                }
            }
            bound = keeping
            return closing
        }
        let futures = closing.map { entry in
            EventLoopFuture.andAllComplete(entry.channels.map { $0.close() }, on: group.next()).map { [logger] in
                // Only this process's descriptors: a NetHost that took the sockets over keeps them open.
                for socket in entry.sockets { _ = systemClose(socket) }
                logger.info("stopped listening for service '\(entry.request.serviceName)' on port \(entry.request.port)")
            }.recover { _ in }
        }
        return EventLoopFuture.andAllComplete(futures, on: group.next())
    }

    private var currentRequests: [ListenRequest] {
        bound.withLockedValue { $0.map(\.request) }
    }

    /// Binds one listening socket per loop of the request's loops, all on one port with
    /// SO_REUSEPORT, each accepting onto its own loop (as nginx's `reuseport`): the kernel
    /// spreads connections over the loops and no connection ever changes threads. A
    /// single loop (the Lua loop) gets one socket, with SO_REUSEPORT too so that a
    /// NetHost started beside this one can share the port. A request with inherited
    /// sockets adopts them instead (see `attach`).
    /// Returns the channels and the descriptors kept for the sockets.
    private func bindOnEveryLoop(_ request: ListenRequest) async throws -> (channels: [any Channel], sockets: [Int32]) {
        let paused = !accepting.withLockedValue { $0 }
        if !request.inherited.isEmpty {
            do {
                // systemd's sockets stay as many as it made; a NetHost's may grow to one per loop.
                let growable = request.inherited.allSatisfy { $0.handed != nil }
                return try await attach(request.inherited.map(\.descriptor), growable: growable, for: request, paused: paused)
            } catch {
                for socket in request.inherited { socket.close() }
                throw error
            }
        }
        let sockets = try bindFresh(count: request.loops.count, for: request, port: request.port)
        do {
            return try await attach(sockets, growable: true, for: request, paused: paused)
        } catch {
            for socket in sockets { _ = systemClose(socket) }
            throw error
        }
    }

    /// `count` new listening sockets for the request's address; a port 0 is picked
    /// by the first, and the others join it.
    private func bindFresh(count: Int, for request: ListenRequest, port requestedPort: Int) throws -> [Int32] {
        let host = request.interface == "*" ? "0.0.0.0" : request.interface
        var sockets: [Int32] = []
        do {
            var port = requestedPort
            for _ in 0 ..< count {
                let address = try SocketAddress(ipAddress: host, port: port)
                let socket = try ListeningSocket.bind(address, backlog: Int32(clamping: request.settings.tcpBacklog))
                sockets.append(socket)
                port = ListeningSocket.localAddress(of: socket)?.port ?? port
            }
        } catch {
            for socket in sockets { _ = systemClose(socket) }
            throw error
        }
        return sockets
    }

    /// Channels accepting on listening sockets that are already bound, one per
    /// socket, spread over the request's loops. More sockets than loops (a takeover
    /// from a NetHost with more threads): a loop accepts on several, so that no
    /// socket's queue is left without an acceptor. More loops than sockets: new
    /// sockets join the port for the loops left over, if it is `growable`; else
    /// those loops accept nothing here (a socket is never watched by two channels,
    /// see `replace`). The descriptors in `sockets` stay the caller's: each channel
    /// gets a copy of its own, since closing a channel closes its descriptor.
    /// Returns the channels and every socket, the new ones included.
    private func attach(
        _ sockets: [Int32], growable: Bool, for request: ListenRequest, paused: Bool
    ) async throws -> (channels: [any Channel], sockets: [Int32]) {
        let loops = request.loops
        guard let first = sockets.first, !loops.isEmpty else { return ([], sockets) }
        var all = sockets
        if growable, loops.count > sockets.count, let port = ListeningSocket.localAddress(of: first)?.port {
            all += try bindFresh(count: loops.count - sockets.count, for: request, port: port)
        }
        var channels: [any Channel] = []
        do {
            for (index, socket) in all.enumerated() {
                let copy = dup(socket)
                guard copy >= 0 else { throw IOError(errnoCode: errno, reason: "dup") }
                _ = fcntl(copy, F_SETFD, FD_CLOEXEC)
                channels.append(try await accept(on: copy, request, loop: loops[index % loops.count], paused: paused))
            }
        } catch {
            for channel in channels { channel.close(promise: nil) }
            for socket in all.dropFirst(sockets.count) { _ = systemClose(socket) }
            throw error
        }
        // NIO listens again with its default backlog when it adopts a socket: the
        // configured one, set on the socket, holds for all its descriptors.
        for socket in all { _ = listen(socket, Int32(clamping: request.settings.tcpBacklog)) }
        return (channels, all)
    }

    /// Until `resumeAccepting`, listeners opened do not accept: connections wait in
    /// their sockets' queues. A takeover holds the sockets it adopted so until the
    /// old process has stopped accepting on them.
    public func holdAccepting() {
        accepting.withLockedValue { $0 = false }
    }

    /// Every listener accepts (again).
    public func resumeAccepting() async {
        accepting.withLockedValue { $0 = true }
        let channels = bound.withLockedValue { $0.flatMap(\.channels) }
        await Self.setAccepting(true, on: channels)
    }

    private static func setAccepting(_ on: Bool, on channels: [any Channel]) async {
        for channel in channels {
            try? await channel.setOption(.autoRead, value: on).get()
        }
    }

    /// A channel accepting on `descriptor` (which it owns from now on) onto `loop`;
    /// `paused`: not yet (autoRead off, so the socket is not even watched).
    private func accept(on descriptor: Int32, _ request: ListenRequest, loop: any EventLoop, paused: Bool) async throws -> any Channel {
        let settings = request.settings
        // Accept on the loop the connections will live on (for a Lua service, the Lua
        // loop), so a new connection never hops threads. TCP_NODELAY is set on the
        // listening socket, which accepted sockets inherit: no setsockopt per connection.
        // SO_REUSEADDR, SO_REUSEPORT and IPV6_V6ONLY were set before the bind
        // (`ListeningSocket.bind`), or by whoever bound an inherited socket.
        let acceptErrors = self.acceptErrors
        let serviceName = request.serviceName
        let bootstrap = ServerBootstrap(group: loop, childGroup: loop)
            // Out of file descriptors, accept would otherwise be retried at once, for
            // ever, in a busy loop (this `bind` adds no AcceptBackoffHandler, and that
            // one would not stop it either): see AcceptPauseHandler.
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        AcceptPauseHandler(events: acceptErrors, serviceName: serviceName)
                    )
                }
            }
            .serverChannelOption(.tcpOption(.tcp_nodelay), value: settings.tcpNoDelay ? 1 : 0)
            .serverChannelOption(.autoRead, value: !paused)
            .childChannelInitializer(Self.settingOptions(settings, then: request.initializeChild))
        // On failure NIO has closed the descriptor if it made a channel of it; a copy
        // it did not get that far with is left open rather than risk closing a number
        // already reused.
        return try await bootstrap.withBoundSocket(descriptor).get()
    }

    /// Sets an accepted connection's options, then runs `initialize`. Set here
    /// through `syncOptions` rather than as the bootstrap's child options, which NIO
    /// applies through a chain of futures: about ten allocations per option and
    /// connection.
    private static func settingOptions(
        _ settings: NetworkSettings, then initialize: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>
    ) -> @Sendable (any Channel) -> EventLoopFuture<Void> {
        let options = ConnectionChannelOptions(settings)
        return { channel in
            do {
                try options.apply(to: channel)
            } catch {
                return channel.eventLoop.makeFailedFuture(error)
            }
            return initialize(channel)
        }
    }

    private static func reason(for error: any Error) -> String {
        if let ioError = error as? IOError {
            switch ioError.errnoCode {
            case EADDRINUSE: return "the address is already in use (by another program or another listener)"
            case EACCES: return "permission denied (ports below 1024 need privileges)"
            case EADDRNOTAVAIL: return "the address is not available on this machine"
            case EAFNOSUPPORT: return "the address family is not supported (no IPv6?)"
            default: return "\(ioError)"
            }
        }
        if let addressError = error as? SocketAddressError {
            return "not an IP address (\(addressError))"
        }
        return "\(error)"
    }
}

/// The options every connection's channel gets, worked out once per port. The Lua
/// end of a relayed TLS connection (`LuaLoopTLSRelay`) gets the same, since its
/// `Connection` relies on them as on a socket's.
struct ConnectionChannelOptions: Sendable {
    private let waterMark: ChannelOptions.Types.WriteBufferWaterMark
    private let receiving: CompactAdaptiveRecvAllocator
    private let keepalive: Bool

    init(_ settings: NetworkSettings, readSize: Int? = nil) {
        // Unwritable only once a real backlog builds up, so a write the socket takes at
        // once costs no writability events. `Connection` keeps its own backlog, and hands
        // the channel one batch at a time; it enforces max_send_buffer_size.
        waterMark = ChannelOptions.Types.WriteBufferWaterMark(low: 1, high: max(1, min(64 * 1024, settings.maxSendBufferSize)))
        // Receive buffers: 128 bytes kept between reads, larger ones only while the
        // traffic needs them, up to read_size (a Lua listener's 8 KiB default is set
        // when its ConnectionHandler starts). One read per wake-up, so NIO's pool
        // keeps one buffer, not one per read of a cycle (see CompactAdaptiveRecvAllocator).
        receiving = CompactAdaptiveRecvAllocator.forConnections(readSize: readSize ?? settings.readSize ?? NetworkSettings.defaultReadSize)
        keepalive = settings.tcpKeepalive
    }

    /// Set through `syncOptions` rather than as a bootstrap's child options, which NIO
    /// applies through a chain of futures: about ten allocations per option and connection.
    func apply(to channel: any Channel, keepalive: Bool? = nil) throws {
        guard let options = channel.syncOptions else { throw ChannelError.operationUnsupported }
        try options.setOption(.writeBufferWaterMark, value: waterMark)
        try options.setOption(.recvAllocator, value: receiving)
        try options.setOption(.maxMessagesPerRead, value: 1)
        if keepalive ?? self.keepalive {
            try options.setOption(.socketOption(.so_keepalive), value: 1)
        }
    }
}

/// `close(2)`, for where a method named `close` hides it.
func systemClose(_ descriptor: Int32) -> Int32 {
    close(descriptor)
}

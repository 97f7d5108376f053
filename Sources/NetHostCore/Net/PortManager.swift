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

    public init(
        serviceName: String,
        interface: String,
        port: Int,
        loops: [any EventLoop],
        settings: NetworkSettings,
        initializeChild: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>
    ) {
        self.serviceName = serviceName
        self.interface = interface
        self.port = port
        self.loops = loops
        self.settings = settings
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
    }
    private let bound = NIOLockedValueBox<[Bound]>([])
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
                let channels = try await bindOnEveryLoop(request)
                bound.withLockedValue { $0.append(Bound(request: request, channels: channels)) }
                let address = channels.first?.localAddress.map(\.logText) ?? "\(request.interface):\(request.port)"
                logger.info("listening for service '\(request.serviceName)' on \(address)")
            } catch {
                errors.append(failure(request, error))
            }
        }
        return errors
    }

    /// Moves listeners onto other loops (a reload changed where a port's connections
    /// must live): each request takes the place of the listener its service has on
    /// the same interface and port, or opens as new if there is none. The new
    /// sockets join the port (SO_REUSEPORT) before the old ones close, so the port
    /// never refuses connections in between and stays with the old listener if the
    /// new one cannot bind. Established connections are untouched.
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
            do {
                // For a configured port 0, the port it was given.
                channels = try await bindOnEveryLoop(request, port: oldFirst.localAddress?.port ?? request.port)
            } catch {
                errors.append(failure(request, error))
                continue
            }
            let swapped = bound.withLockedValue { bound -> Bool in
                guard let index = bound.firstIndex(where: { $0.channels.first === oldFirst }) else { return false }
                bound[index] = Bound(request: request, channels: channels)
                return true
            }
            guard swapped else {
                // Closed meanwhile (a shutdown): the port is not wanted any more.
                for channel in channels { channel.close(promise: nil) }
                continue
            }
            // Waited for, so that once this returns every new connection reaches the new sockets.
            try? await EventLoopFuture.andAllComplete(current.channels.map { $0.close() }, on: group.next()).get()
            let address = channels.first?.localAddress.map(\.logText) ?? "\(request.interface):\(request.port)"
            logger.info("listening for service '\(request.serviceName)' on \(address), now accepting on \(channels.count) event loop(s)")
        }
        return errors
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
    /// single loop (the Lua loop) gets one socket, with SO_REUSEPORT too so that
    /// `replace` can later bind beside it.
    private func bindOnEveryLoop(_ request: ListenRequest, port requestedPort: Int? = nil) async throws -> [any Channel] {
        let loops = request.loops
        let host = request.interface == "*" ? "0.0.0.0" : request.interface
        var channels: [any Channel] = []
        do {
            // A configured port 0 means "any": the first socket picks it, the others join it.
            var port = requestedPort ?? request.port
            for loop in loops {
                let channel = try await bind(request, on: loop, at: SocketAddress(ipAddress: host, port: port))
                channels.append(channel)
                port = channel.localAddress?.port ?? port
            }
        } catch {
            for channel in channels { channel.close(promise: nil) }
            throw error
        }
        return channels
    }

    private func bind(_ request: ListenRequest, on loop: any EventLoop, at address: SocketAddress) async throws -> any Channel {
        let isIPv6: Bool
        if case .v6 = address { isIPv6 = true } else { isIPv6 = false }
        let settings = request.settings
        // Accept on the loop the connections will live on (for a Lua service, the Lua
        // loop), so a new connection never hops threads. TCP_NODELAY is set on the
        // listening socket, which accepted sockets inherit: no setsockopt per connection.
        let acceptErrors = self.acceptErrors
        let serviceName = request.serviceName
        var bootstrap = ServerBootstrap(group: loop, childGroup: loop)
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
            .serverChannelOption(.backlog, value: Int32(clamping: settings.tcpBacklog))
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.tcpOption(.tcp_nodelay), value: settings.tcpNoDelay ? 1 : 0)
            .serverChannelOption(
                ChannelOptions.Types.SocketOption(level: .socket, name: .init(rawValue: SO_REUSEPORT)), value: 1
            )
            .childChannelInitializer(Self.settingOptions(settings, then: request.initializeChild))
        if isIPv6 {
            // "::" means IPv6 only, as in Prosody; "*" covers IPv4.
            bootstrap = bootstrap.serverChannelOption(
                ChannelOptions.Types.SocketOption(level: .ipv6, name: .ipv6_v6only), value: 1
            )
        }
        return try await bootstrap.bind(to: address).get()
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

import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How an outgoing connection reaches the network: name resolution and one
/// connect attempt. `OutgoingConnection` decides what to try, in which order and
/// for how long; this only does it. Tests give a transport whose attempts never
/// complete, to drive the connect timeout on an `EmbeddedEventLoop`.
public protocol OutgoingTransport: Sendable {
    /// The addresses of `host`, in the order to try them. Must not block `loop`:
    /// the result is delivered on it.
    func resolve(host: String, port: Int, on loop: any EventLoop) -> EventLoopFuture<[SocketAddress]>
    /// Starts one connect attempt on `loop`. The channel comes back active, reading
    /// nothing yet (auto-read off) and with no handler: the caller adds its stages,
    /// then turns reading on, so nothing the peer sends first is lost.
    func connect(to address: SocketAddress, on loop: any EventLoop, settings: NetworkSettings, readSize: Int) -> OutgoingAttempt
    /// The TLS context for an outgoing connection with `options`; may load files
    /// (the system's CA store), so it is asked for off the loop, like resolution.
    func clientTLSContext(_ options: OutgoingTLSOptions, on loop: any EventLoop) -> EventLoopFuture<NIOSSLContext>
}

/// One connect attempt under way.
public struct OutgoingAttempt: Sendable {
    public let channel: EventLoopFuture<any Channel>
    /// Gives up the attempt (the connect timeout): closes its socket if it has one.
    public let cancel: @Sendable () -> Void

    public init(channel: EventLoopFuture<any Channel>, cancel: @escaping @Sendable () -> Void) {
        self.channel = channel
        self.cancel = cancel
    }
}

/// TLS for an outgoing connection, client side: the peer is verified against the
/// system's CAs (or `caFile`) unless `verify` is false; SNI is the host name.
public struct OutgoingTLSOptions: Sendable, Hashable {
    public var caFile: String?
    public var verify: Bool
    /// The name sent as SNI and checked against the certificate; nil: the host connected to.
    public var serverName: String?

    public init(caFile: String? = nil, verify: Bool = true, serverName: String? = nil) {
        self.caFile = caFile
        self.verify = verify
        self.serverName = serverName
    }
}

/// The real network: getaddrinfo on NIO's blocking thread pool (NIO's own resolver
/// would run it on the event loop, stalling every connection there for as long as
/// DNS takes), sockets through `ClientBootstrap`.
public struct PosixOutgoingTransport: OutgoingTransport {
    let pool: NIOThreadPool
    /// TLS contexts by options, for the process: making one reads the CA store, so it is done once.
    private static let contexts = NIOLockedValueBox<[OutgoingTLSOptions: NIOSSLContext]>([:])

    public init(pool: NIOThreadPool = NIOSingletons.posixBlockingThreadPool) {
        self.pool = pool
    }

    public func resolve(host: String, port: Int, on loop: any EventLoop) -> EventLoopFuture<[SocketAddress]> {
        pool.runIfActive(eventLoop: loop) { try HostResolution.resolve(host: host, port: port) }
    }

    public func connect(
        to address: SocketAddress, on loop: any EventLoop, settings: NetworkSettings, readSize: Int
    ) -> OutgoingAttempt {
        guard let bootstrap = ClientBootstrap(validatingGroup: loop) else {
            return OutgoingAttempt(
                channel: loop.makeFailedFuture(OutgoingFailure("this event loop cannot open sockets")), cancel: {}
            )
        }
        let opened = NIOLockedValueBox<(any Channel)?>(nil)
        let future = bootstrap
            // A backstop only: `OutgoingConnection` times the attempt on the loop itself.
            .connectTimeout(settings.connectTimeoutAmount + .seconds(1))
            .channelOption(.autoRead, value: false)
            .channelOption(.tcpOption(.tcp_nodelay), value: settings.tcpNoDelay ? 1 : 0)
            .channelOption(.socketOption(.so_keepalive), value: settings.tcpKeepalive ? 1 : 0)
            .channelOption(.recvAllocator, value: CompactAdaptiveRecvAllocator.forConnections(readSize: readSize))
            .channelInitializer { channel in
                opened.withLockedValue { $0 = channel }
                return channel.eventLoop.makeSucceededVoidFuture()
            }
            .connect(to: address)
        return OutgoingAttempt(channel: future) {
            opened.withLockedValue { $0 }?.close(promise: nil)
        }
    }

    public func clientTLSContext(_ options: OutgoingTLSOptions, on loop: any EventLoop) -> EventLoopFuture<NIOSSLContext> {
        let contexts = Self.contexts
        if let context = contexts.withLockedValue({ $0[options] }) {
            return loop.makeSucceededFuture(context)
        }
        return pool.runIfActive(eventLoop: loop) {
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.certificateVerification = options.verify ? .fullVerification : .none
            if let caFile = options.caFile {
                configuration.trustRoots = .file(caFile)
            }
            let context = try NIOSSLContext(configuration: configuration)
            contexts.withLockedValue { $0[options] = context }
            return context
        }
    }
}

/// getaddrinfo, blocking: run it off the event loops.
enum HostResolution {
    /// The addresses of `host` for a TCP connection to `port`, in getaddrinfo's
    /// order (RFC 6724's, IPv6 and IPv4 mixed as the system prefers), without repeats.
    static func resolve(host: String, port: Int) throws -> [SocketAddress] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        #if canImport(Glibc)
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #else
        hints.ai_socktype = SOCK_STREAM
        #endif
        hints.ai_flags = AI_ADDRCONFIG
        var list: UnsafeMutablePointer<addrinfo>?
        let code = getaddrinfo(host, String(port), &hints, &list)
        guard code == 0 else {
            let reason = gai_strerror(code).map { String(cString: $0) } ?? "error \(code)"
            throw OutgoingFailure("could not resolve '\(host)': \(reason)")
        }
        defer { freeaddrinfo(list) }
        var addresses: [SocketAddress] = []
        var next = list
        while let entry = next?.pointee {
            next = entry.ai_next
            guard let raw = entry.ai_addr else { continue }
            let address: SocketAddress
            switch Int32(raw.pointee.sa_family) {
            case AF_INET:
                address = raw.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { SocketAddress($0.pointee, host: host) }
            case AF_INET6:
                address = raw.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { SocketAddress($0.pointee, host: host) }
            default:
                continue
            }
            if !addresses.contains(address) { addresses.append(address) }
        }
        guard !addresses.isEmpty else { throw OutgoingFailure("could not resolve '\(host)': no address") }
        return addresses
    }

    /// `host` as an address if it is one (`::1`, `[::1]`, `127.0.0.1`): no resolution then.
    static func literal(_ host: String, port: Int) -> SocketAddress? {
        var text = Substring(host)
        if text.hasPrefix("["), text.hasSuffix("]") { text = text.dropFirst().dropLast() }
        return try? SocketAddress(ipAddress: String(text), port: port)
    }
}

/// Why an outgoing connection failed, in the words `ondisconnect` is given.
public struct OutgoingFailure: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }

    /// The reason for a failed connect attempt, in the socket error's usual words
    /// (as LuaSocket gives them to Prosody's `ondisconnect`).
    static func describe(_ error: any Error) -> String {
        if let failure = error as? OutgoingFailure { return failure.description }
        if let connection = error as? NIOConnectionError, let first = connection.connectionErrors.first {
            return describe(first.error)
        }
        if let channelError = error as? ChannelError, case .connectTimeout = channelError { return "connection timed out" }
        if let ioError = error as? IOError {
            switch ioError.errnoCode {
            case ECONNREFUSED: return "connection refused"
            case ETIMEDOUT: return "connection timed out"
            case ENETUNREACH: return "network unreachable"
            case EHOSTUNREACH: return "no route to host"
            case ECONNRESET: return "connection reset by peer"
            case EADDRNOTAVAIL: return "address not available"
            default: return String(cString: strerror(ioError.errnoCode)).lowercased()
            }
        }
        return "\(error)"
    }
}

import Logging
import NIOCore
import NIOTLS
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The channel stage that turns NIO events into listener callbacks. It is the
/// last handler of every service pipeline; `net_proxy` adds it once the PROXY
/// header has been read, with the addresses the header named.
public final class ConnectionHandler: ChannelInboundHandler {
    public typealias InboundIn = ByteBuffer

    private static let nextID = Atomic<UInt64>(1)

    /// What `start` needs to make the `Connection`, released once it has: an idle
    /// connection should not carry a second copy of its settings and addresses.
    private final class Setup {
        let serviceName: String
        let listener: any ConnectionListener
        let settings: NetworkSettings
        let addresses: ConnectionAddresses?
        let origin: (any Sendable)?
        let logger: Logger
        let tls: TLSSettings?

        init(serviceName: String, listener: any ConnectionListener, settings: NetworkSettings, addresses: ConnectionAddresses?,
             origin: (any Sendable)?, logger: Logger, tls: TLSSettings?) {
            self.serviceName = serviceName
            self.listener = listener
            self.settings = settings
            self.addresses = addresses
            self.origin = origin
            self.logger = logger
            self.tls = tls
        }
    }

    private var setup: Setup?
    private let tracker: ConnectionTracker?
    private let startsWithTLS: Bool
    private var connection: Connection?

    /// - Parameters:
    ///   - addresses: the client as a proxy named it; nil means the socket's own peer.
    ///   - origin: the parsed PROXY header, if any.
    public init(
        serviceName: String,
        listener: any ConnectionListener,
        settings: NetworkSettings,
        addresses: ConnectionAddresses? = nil,
        origin: (any Sendable)? = nil,
        logger: Logger,
        tracker: ConnectionTracker? = nil,
        tls: TLSSettings? = nil,
        startsWithTLS: Bool = false
    ) {
        self.setup = Setup(serviceName: serviceName, listener: listener, settings: settings, addresses: addresses,
                           origin: origin, logger: logger, tls: tls)
        self.startsWithTLS = startsWithTLS
        self.tracker = tracker
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive {
            start(context: context)
        }
    }

    public func channelActive(context: ChannelHandlerContext) {
        start(context: context)
        context.fireChannelActive()
    }

    private func start(context: ChannelHandlerContext) {
        guard connection == nil, let setup else { return }
        self.setup = nil
        let id = Self.nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        let addresses = setup.addresses
            ?? ConnectionAddresses(peer: context.channel.remoteAddress, local: context.channel.localAddress)
        let connection = Connection(
            id: id,
            context: context,
            serviceName: setup.serviceName,
            listener: setup.listener,
            addresses: addresses,
            origin: setup.origin,
            settings: setup.settings,
            logger: setup.logger,
            tls: setup.tls,
            isTLS: startsWithTLS
        )
        self.connection = connection
        if setup.settings.readSize == nil, setup.listener.defaultReadSize != NetworkSettings.defaultReadSize {
            // The port was opened with the Swift services' default; this listener's is another.
            try? context.channel.syncOptions?.setOption(
                .recvAllocator, value: CompactAdaptiveRecvAllocator.forConnections(readSize: setup.listener.defaultReadSize)
            )
        }
        tracker?.add(connection)
        connection.log(.debug, "connected")
        connection.start()
        if !startsWithTLS {
            connection.announceConnect()
        }
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        connection?.deliver(unwrapInboundIn(data))
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        connection?.writabilityChanged()
        context.fireChannelWritabilityChanged()
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted(let negotiatedProtocol) = event {
            connection?.log(.debug, "TLS handshake complete", metadata: negotiatedProtocol.map { ["alpn": "\($0)"] })
            // What the service wrote during a STARTTLS handshake goes first, encrypted.
            connection?.tlsHandshakeCompleted()
            // Prosody's order: the status first, then, for direct TLS, onconnect, so
            // the service meets the connection once it is encrypted.
            connection?.status("ssl-handshake-complete")
            if startsWithTLS {
                connection?.announceConnect()
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let failure = TLSFailure(error) {
            connection?.tlsFailed(failure)
        } else {
            connection?.noteChannelError(Self.describe(error))
            connection?.log(.debug, "connection error: \(error)")
        }
        context.close(promise: nil)
    }

    public func channelInactive(context: ChannelHandlerContext) {
        if let connection {
            tracker?.remove(connection)
            self.connection = nil
            connection.log(.debug, "disconnected", metadata: connection.closeReason.map { ["reason": "\($0)"] })
            connection.finished()
        }
        context.fireChannelInactive()
    }

    /// Prosody passes the socket error's text to ondisconnect; match its words for the common ones.
    private static func describe(_ error: any Error) -> String {
        if let ioError = error as? IOError {
            switch ioError.errnoCode {
            case ECONNRESET: return "connection reset by peer"
            case EPIPE: return "broken pipe"
            case ETIMEDOUT: return "connection timed out"
            default: return "\(ioError)"
            }
        }
        return "\(error)"
    }
}

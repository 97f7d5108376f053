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
    /// Set when this is the Lua loop's end of a TLS connection whose TLS runs on
    /// another loop (`LuaLoopTLSRelay`): the handshake is over before this stage
    /// starts, and the errors that ended it are the other side's.
    private let relay: TLSRelayLink?
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
        self.relay = nil
    }

    /// The Lua loop's end of a relayed TLS connection (see `LuaLoopTLSRelay`).
    init(
        serviceName: String,
        listener: any ConnectionListener,
        settings: NetworkSettings,
        addresses: ConnectionAddresses,
        origin: (any Sendable)?,
        logger: Logger,
        tracker: ConnectionTracker?,
        tls: TLSSettings,
        relay: TLSRelayLink
    ) {
        self.setup = Setup(serviceName: serviceName, listener: listener, settings: settings, addresses: addresses,
                           origin: origin, logger: logger, tls: tls)
        self.startsWithTLS = true
        self.tracker = tracker
        self.relay = relay
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
        connection.relayedSocket = relay?.socket
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
        if let relay {
            // The handshake finished on the TLS side's loop (or never did: then only
            // ondisconnect follows, as for a handshake that failed here).
            let handshake = relay.handshake
            if handshake.completed {
                handshakeCompleted(connection, negotiatedProtocol: handshake.negotiatedProtocol)
            }
        } else if !startsWithTLS {
            connection.announceConnect()
        }
    }

    private func handshakeCompleted(_ connection: Connection, negotiatedProtocol: String?) {
        connection.log(.debug, "TLS handshake complete", metadata: negotiatedProtocol.map { ["alpn": "\($0)"] })
        // What the service wrote during a STARTTLS handshake goes first, encrypted.
        connection.tlsHandshakeCompleted()
        // Prosody's order: the status first, then, for direct TLS, onconnect, so
        // the service meets the connection once it is encrypted.
        connection.status("ssl-handshake-complete")
        if startsWithTLS {
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
        if case TLSUserEvent.handshakeCompleted(let negotiatedProtocol) = event, let connection {
            handshakeCompleted(connection, negotiatedProtocol: negotiatedProtocol)
        }
        context.fireUserInboundEventTriggered(event)
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        note(TLSRelayLink.Ending(error), error: error)
        context.close(promise: nil)
    }

    /// What `ondisconnect` is told, and the log, for an error of this connection's.
    private func note(_ ending: TLSRelayLink.Ending, error: (any Error)? = nil) {
        switch ending {
        case .tls(let failure):
            connection?.tlsFailed(failure)
        case .channel(let description):
            connection?.noteChannelError(description)
            connection?.log(.debug, "connection error: \(error.map { "\($0)" } ?? description)")
        }
    }

    public func channelInactive(context: ChannelHandlerContext) {
        if let connection {
            // A relayed connection's own errors are the TLS side's; its end of the
            // pair only saw the end of input.
            for ending in relay?.takeEndings() ?? [] {
                note(ending)
            }
            tracker?.remove(connection)
            self.connection = nil
            connection.log(.debug, "disconnected", metadata: connection.closeReason.map { ["reason": "\($0)"] })
            connection.finished()
        }
        context.fireChannelInactive()
    }

    /// Prosody passes the socket error's text to ondisconnect; match its words for the common ones.
    static func describe(_ error: any Error) -> String {
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

import Logging
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Direct TLS for a Lua service, off the Lua loop (issue 14).
///
/// The Lua state lives on one loop, and so did every connection of a Lua service,
/// TLS included: a flood of handshakes kept that loop busy and every Lua service
/// waited. Here the client's connection is accepted on a Swift loop, which runs the
/// handshake (with its timeout and rate limit) and all encryption. Once the
/// handshake is done, a socket pair joins it to a channel on the Lua loop that gets
/// the usual `ConnectionHandler`, told the client's addresses, the PROXY header and
/// that the connection is encrypted: a Lua service sees what it saw before, and only
/// plaintext reaches its loop.
///
///     client ⇄ [TCP: TLS, this stage, glue]  ⇄ socket pair ⇄ [ConnectionHandler]
///              ───────── a Swift loop ───────  ⇄ [glue] ⇄    ───── Lua loop ─────
///
/// Costs: two more descriptors per connection (the pair), and a copy through the
/// kernel each way. A connection that ends before its handshake does (a failed or
/// timed-out handshake, a client that leaves) still reaches the Lua loop, as one
/// end of a pair whose other end is closed at once, so that the service's
/// `ondisconnect` hears why, as it did when the handshake ran there.
final class LuaLoopTLSRelay: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    /// What the Lua loop's end is made from; all `Sendable`, as it crosses to that loop.
    struct LuaSide: Sendable {
        let luaLoop: any EventLoop
        let serviceName: String
        let listener: any ConnectionListener
        let settings: NetworkSettings
        /// The client as a PROXY header named it; nil: the socket's peer.
        let addresses: ConnectionAddresses?
        let origin: (any Sendable)?
        let logger: Logger
        let tracker: ConnectionTracker?
        let tls: TLSSettings

        /// What the Lua loop's end and the glue's read at a time: the listener's size.
        var readSize: Int { settings.readSize ?? listener.defaultReadSize }
    }

    private let luaSide: LuaSide
    /// This connection's end of the glue, after this stage in the pipeline.
    private let glue: RelayGlueHandler
    private var link: TLSRelayLink?
    /// The Lua loop's end has been (or is being) made.
    private var opened = false

    init(luaSide: LuaSide, glue: RelayGlueHandler) {
        self.luaSide = luaSide
        self.glue = glue
    }

    func handlerAdded(context: ChannelHandlerContext) {
        link = TLSRelayLink(socket: context.channel)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted(let negotiatedProtocol) = event, !opened, let link {
            opened = true
            link.handshakeCompleted(negotiatedProtocol: negotiatedProtocol)
            if let options = context.channel.syncOptions {
                // Until the glue is joined, what the client sends waits in the socket,
                // not here. A client's half-close is passed on as one (`inputClosed`),
                // so that the Lua end reads all before its end of input, as a socket
                // of its own would have; the Lua end then closes as it always has.
                try? options.setOption(ChannelOptions.autoRead, value: false)
                try? options.setOption(ChannelOptions.allowRemoteHalfClosure, value: true)
            }
            open(context: context, link: link, handshakeCompleted: true)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Noted for the Lua end's ConnectionHandler, which reports it as it would have
        // (ondisconnect's reason, the handshake failure log).
        link?.record(TLSRelayLink.Ending(error))
        // A client's close without close_notify once the relay runs: an `inputClosed`
        // follows (half-closure is on), and the glue passes it on; else the connection ends.
        if opened, case NIOSSLError.uncleanShutdown = error { return }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !opened, let link {
            // Ended before its handshake did: the Lua end only tells ondisconnect why.
            opened = true
            open(context: context, link: link, handshakeCompleted: false)
        }
        context.fireChannelInactive()
    }

    // MARK: Making the Lua end

    private func open(context: ChannelHandlerContext, link: TLSRelayLink, handshakeCompleted: Bool) {
        let channel = context.channel
        let addresses = luaSide.addresses ?? ConnectionAddresses(peer: channel.remoteAddress, local: channel.localAddress)
        let pair: (lua: CInt, swift: CInt)
        do {
            pair = try Self.socketPair()
        } catch {
            // Out of descriptors, most likely: the connection cannot be served.
            log(.error, addresses, "could not relay a TLS connection to the Lua loop, closing it: \(error)")
            context.close(promise: nil)
            return
        }
        if handshakeCompleted {
            joinSwiftEnd(descriptor: pair.swift, to: channel, grace: luaSide.settings.sendTimeoutAmount)
        } else {
            // Nothing to relay: the Lua end reads its end of input at once.
            _ = close(pair.swift)
        }
        let luaSide = self.luaSide
        Self.openLuaEnd(descriptor: pair.lua, luaSide: luaSide, addresses: addresses, link: link).whenFailure { error in
            // The Lua loop is shutting down, say: the client is let go.
            Self.log(luaSide, .warning, addresses, "could not hand a TLS connection to the Lua loop, closing it: \(error)")
            channel.close(promise: nil)
        }
    }

    /// Registers this loop's end of the pair and joins its glue to the TLS channel's.
    private func joinSwiftEnd(descriptor: CInt, to channel: any Channel, grace: TimeAmount) {
        guard let bootstrap = ClientBootstrap(validatingGroup: channel.eventLoop) else {
            _ = close(descriptor)
            channel.close(promise: nil)
            return
        }
        let options = ConnectionChannelOptions(luaSide.settings, readSize: luaSide.readSize)
        let registered = bootstrap.channelInitializer { end in
            end.eventLoop.makeCompletedFuture {
                try options.apply(to: end, keepalive: false)
                try end.pipeline.syncOperations.addHandler(RelayGlueHandler(closeGrace: grace))
            }
        }.withConnectedSocket(descriptor)
        let glue = self.glue
        // On this loop: the bootstrap's group is the channel's own loop.
        registered.assumeIsolated().whenComplete { result in
            switch result {
            case .success(let end):
                guard let theirs = try? end.pipeline.syncOperations.handler(type: RelayGlueHandler.self) else {
                    end.close(promise: nil)
                    channel.close(promise: nil)
                    return
                }
                RelayGlueHandler.join(glue, theirs)
            case .failure:
                // NIO closed the descriptor; the Lua end reads its end of input and closes.
                channel.close(promise: nil)
            }
        }
    }

    /// Registers the Lua loop's end of the pair with the service's usual stage.
    private static func openLuaEnd(
        descriptor: CInt, luaSide: LuaSide, addresses: ConnectionAddresses, link: TLSRelayLink
    ) -> EventLoopFuture<any Channel> {
        guard let bootstrap = ClientBootstrap(validatingGroup: luaSide.luaLoop) else {
            _ = close(descriptor)
            return luaSide.luaLoop.makeFailedFuture(ChannelError.operationUnsupported)
        }
        let options = ConnectionChannelOptions(luaSide.settings, readSize: luaSide.readSize)
        return bootstrap.channelInitializer { end in
            // On the Lua loop: the connection's stage is made where it will live.
            end.eventLoop.makeCompletedFuture {
                try options.apply(to: end, keepalive: false)
                try end.pipeline.syncOperations.addHandler(ConnectionHandler(
                    serviceName: luaSide.serviceName,
                    listener: luaSide.listener,
                    settings: luaSide.settings,
                    addresses: addresses,
                    origin: luaSide.origin,
                    logger: luaSide.logger,
                    tracker: luaSide.tracker,
                    tls: luaSide.tls,
                    relay: link
                ))
            }
        }.withConnectedSocket(descriptor)
    }

    /// A connected pair of local stream sockets, closed on exec.
    static func socketPair() throws -> (lua: CInt, swift: CInt) {
        var descriptors: [CInt] = [-1, -1]
        #if canImport(Glibc) || canImport(Musl)
        let type = CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue)
        #else
        let type = SOCK_STREAM
        #endif
        guard socketpair(AF_UNIX, type, 0, &descriptors) == 0 else {
            throw IOError(errnoCode: errno, reason: "socketpair")
        }
        return (descriptors[0], descriptors[1])
    }

    private func log(_ level: Logger.Level, _ addresses: ConnectionAddresses, _ message: @autoclosure () -> Logger.Message) {
        Self.log(luaSide, level, addresses, message())
    }

    private static func log(
        _ luaSide: LuaSide, _ level: Logger.Level, _ addresses: ConnectionAddresses, _ message: @autoclosure () -> Logger.Message
    ) {
        guard luaSide.logger.logLevel <= level else { return }
        var logger = luaSide.logger
        logger[metadataKey: "client"] = "\(addresses.clientIP):\(addresses.clientPort)"
        logger[metadataKey: "service"] = "\(luaSide.serviceName)"
        if let proxyIP = addresses.proxyIP {
            logger[metadataKey: "proxy"] = "\(proxyIP)"
        }
        logger.log(level: level, message())
    }
}

/// What the two halves of a relayed TLS connection share: whether the handshake
/// finished, and the errors the TLS side met, in order, which the Lua end reports as
/// a connection of its own would have (`ConnectionHandler`). The TLS side records
/// an error before it closes, and the Lua end reads them after the pair told it
/// the connection ended, so the lock orders them.
package final class TLSRelayLink: Sendable {
    /// An error on the TLS side, in a form that may cross loops.
    enum Ending: Sendable {
        case tls(TLSFailure)
        case channel(String)

        init(_ error: any Error) {
            if let failure = TLSFailure(error) {
                self = .tls(failure)
            } else {
                self = .channel(ConnectionHandler.describe(error))
            }
        }
    }

    private struct State {
        var handshakeCompleted = false
        var negotiatedProtocol: String?
        var endings: [Ending] = []
    }

    private let state = Mutex(State())
    /// The client's own socket, where `conn:setoption` takes effect.
    let socket: any Channel

    init(socket: any Channel) {
        self.socket = socket
    }

    func handshakeCompleted(negotiatedProtocol: String?) {
        state.withLock {
            $0.handshakeCompleted = true
            $0.negotiatedProtocol = negotiatedProtocol
        }
    }

    /// Whether the Lua end should announce the connection, and the protocol ALPN chose.
    var handshake: (completed: Bool, negotiatedProtocol: String?) {
        state.withLock { ($0.handshakeCompleted, $0.negotiatedProtocol) }
    }

    func record(_ ending: Ending) {
        state.withLock { $0.endings.append(ending) }
    }

    /// The errors recorded so far, once.
    func takeEndings() -> [Ending] {
        state.withLock {
            let endings = $0.endings
            $0.endings = []
            return endings
        }
    }
}

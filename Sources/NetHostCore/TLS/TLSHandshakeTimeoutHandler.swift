import NIOCore
import NIOTLS

/// The stage right after a server-side TLS stage: it closes the connection if the
/// handshake has not finished within `ssl_handshake_timeout`, counted and logged
/// (`TLSHandshakeLimits.timedOut`). The clock starts when the stage is added to an
/// active channel (STARTTLS, after a PROXY header) or when the channel becomes
/// active (direct TLS). It sees the TLS stage's `handshakeCompleted` event, cancels
/// its timer and leaves the pipeline, so an established connection carries nothing
/// of it.
///
/// The whole handshake is bounded, as nginx's ssl_handshake_timeout does; Prosody's
/// server_epoll bounds each step with its ssl_handshake_timeout, which lets a client
/// that drips its hello a byte at a time stay for ever.
final class TLSHandshakeTimeoutHandler: ChannelInboundHandler, RemovableChannelHandler, LoopTimerTarget {
    typealias InboundIn = NIOAny

    var loopTimerSlot = LoopTimerSlot()
    private let limits: TLSHandshakeLimits
    private let timeout: TimeAmount
    private let serviceName: String
    /// The client as a proxy named it; nil: the socket's own peer.
    private let addresses: ConnectionAddresses?
    private var context: ChannelHandlerContext?
    /// The wheel the timer is on, while it is on one.
    private var timers: LoopTimers?
    private var started = false

    init(limits: TLSHandshakeLimits, timeout: TimeAmount, serviceName: String, addresses: ConnectionAddresses?) {
        self.limits = limits
        self.timeout = timeout
        self.serviceName = serviceName
        self.addresses = addresses
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive {
            start(context: context)
        }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context: context)
        context.fireChannelActive()
    }

    private func start(context: ChannelHandlerContext) {
        guard !started else { return }
        started = true
        let timers = LoopTimers.current(on: context.eventLoop)
        self.timers = timers
        timers.schedule(self, at: timers.now + timeout)
    }

    private func stop() {
        timers?.cancel(self)
        timers = nil
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard case TLSUserEvent.handshakeCompleted = event else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        stop()
        context.fireUserInboundEventTriggered(event)
        // The connection may have been closed meanwhile (by onconnect, say); removing is then a no-op.
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        stop()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stop()
        self.context = nil
    }

    func loopTimerFired() {
        timers = nil
        guard let context, context.channel.isActive else { return }
        let client = addresses?.clientIP ?? context.channel.remoteAddress?.ipText ?? "?"
        let reason = limits.timedOut(client: client, proxy: addresses?.proxyIP, service: serviceName, after: timeout)
        // The service's stage notes the reason for ondisconnect, and closes.
        context.fireErrorCaught(TLSHandshakeTimedOut(description: reason))
        context.close(promise: nil)
    }
}

/// Fired down the pipeline when a handshake timed out; its description is what
/// `ondisconnect` is told.
struct TLSHandshakeTimedOut: Error, CustomStringConvertible {
    let description: String
}

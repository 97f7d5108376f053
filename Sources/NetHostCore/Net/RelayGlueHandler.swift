import NIOCore

/// One end of a byte relay between two channels on the same event loop: what one
/// channel reads, the other writes, in order, with nothing added or lost. Used to
/// join a direct-TLS connection, whose TLS runs on a Swift loop, to the socket pair
/// whose other end the Lua loop serves (`LuaLoopTLSRelay`).
///
/// - Backpressure: while a channel cannot take more (not writable), its partner stops
///   reading (autoRead off), so at most one read's worth waits in between.
/// - Until the partner is attached (its channel is still being registered), reads
///   and the end of input are held, then handed over in order.
/// - A half-close (`ChannelEvent.inputClosed`) becomes a half-close of the partner's
///   output once what was read before it is written.
/// - When a channel closes, its partner closes once everything it was given has been
///   written, or after `closeGrace` if its peer does not read: without that bound a
///   peer that never reads would hold the connection open for ever.
///
/// Both ends live on one loop, so they call each other directly; neither is `Sendable`.
final class RelayGlueHandler: ChannelDuplexHandler, RemovableChannelHandler, LoopTimerTarget {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum InputEnd {
        /// The channel's peer half-closed: no more input, output still open.
        case halfClosed
        /// The channel has gone.
        case closed
    }

    private var context: ChannelHandlerContext?
    private var partner: RelayGlueHandler?
    /// Read before the partner was attached.
    private var held: [ByteBuffer] = []
    private var heldEnd: InputEnd?
    /// Bytes were written for the partner since the last flush.
    private var needsFlush = false
    /// The partner's channel has gone: this one closes once its writes are out.
    private var closing = false
    private let closeGrace: TimeAmount
    var loopTimerSlot = LoopTimerSlot()
    private var timers: LoopTimers?

    /// - Parameter closeGrace: how long a close waits for the bytes it must still
    ///   send (the connection's `send_timeout`).
    init(closeGrace: TimeAmount) {
        self.closeGrace = closeGrace
    }

    /// Joins two ends; each hands the other what it held meanwhile.
    static func join(_ first: RelayGlueHandler, _ second: RelayGlueHandler) {
        first.partner = second
        second.partner = first
        first.handOverHeld()
        second.handOverHeld()
        // Each reads only while the other can take what it reads.
        first.syncReading()
        second.syncReading()
    }

    private func handOverHeld() {
        guard let partner else { return }
        let held = self.held
        self.held = []
        for buffer in held {
            partner.forward(buffer)
        }
        partner.flushForwarded()
        switch heldEnd {
        case nil: break
        case .halfClosed: partner.endOutput()
        case .closed:
            self.partner = nil
            partner.partnerClosed()
        }
        heldEnd = nil
    }

    /// Reads while the partner's channel can take more.
    private func syncReading() {
        guard let partner, let partnerContext = partner.context else { return }
        setReading(partnerContext.channel.isWritable)
    }

    // MARK: Events on this end's channel

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stopTimer()
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        if let partner {
            partner.forward(buffer)
        } else if heldEnd == nil, !closing {
            held.append(buffer)
        }
        // Otherwise the partner has gone, and the bytes with it (as a closed connection drops them).
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        partner?.flushForwarded()
        context.fireChannelReadComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event {
            if let partner {
                partner.endOutput()
            } else if heldEnd == nil {
                heldEnd = .halfClosed
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        partner?.setReading(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        stopTimer()
        if let partner {
            self.partner = nil
            partner.partnerClosed()
        } else if !closing {
            heldEnd = .closed
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A stage before this one that cares about the error (the TLS side's
        // `LuaLoopTLSRelay.Handler`) has seen it; here the channel just ends.
        context.close(promise: nil)
    }

    // MARK: Called by the partner

    private func forward(_ buffer: ByteBuffer) {
        guard let context, !closing else { return }
        context.write(wrapOutboundOut(buffer), promise: nil)
        needsFlush = true
    }

    private func flushForwarded() {
        guard needsFlush, let context else { return }
        needsFlush = false
        context.flush()
    }

    private func setReading(_ reading: Bool) {
        guard let context, let options = context.channel.syncOptions else { return }
        try? options.setOption(ChannelOptions.autoRead, value: reading)
        if reading {
            context.read()
        }
    }

    /// The partner's input ended but its channel stays: once what it sent is
    /// written, this channel's output closes too.
    private func endOutput() {
        guard let context, !closing else { return }
        needsFlush = false
        let written = context.eventLoop.makePromise(of: Void.self)
        written.futureResult.assumeIsolated().whenComplete { [self] result in
            guard case .success = result, let context = self.context else { return }
            context.close(mode: .output, promise: nil)
        }
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(capacity: 0)), promise: written)
    }

    /// The partner's channel has gone: close once what it sent is written, or at the grace bound.
    private func partnerClosed() {
        partner = nil
        guard let context, !closing else { return }
        closing = true
        needsFlush = false
        guard context.channel.isActive else {
            context.close(promise: nil)
            return
        }
        let written = context.eventLoop.makePromise(of: Void.self)
        written.futureResult.assumeIsolated().whenComplete { [self] _ in
            stopTimer()
            self.context?.close(promise: nil)
        }
        // Writes complete in order: the empty one's promise says the rest is out.
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(capacity: 0)), promise: written)
        guard self.context != nil, context.channel.isActive else { return }
        let timers = LoopTimers.current(on: context.eventLoop)
        self.timers = timers
        timers.schedule(self, at: timers.now + closeGrace)
    }

    func loopTimerFired() {
        timers = nil
        // The peer did not take the last bytes within the grace: they are dropped.
        context?.close(promise: nil)
    }

    private func stopTimer() {
        timers?.cancel(self)
        timers = nil
    }
}

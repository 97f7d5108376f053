import NIOCore
import NetHost
import ProxyProtocol

/// The PROXY stage's life in one value: which state a connection is in and what
/// each event means for it. Each method takes one event and returns what the
/// handler (`ProxyHeaderHandler`) must do; the handler does the I/O, the counting
/// and the logging, and the parsing is `ProxyHeaderParser`'s.
///
///     idle ── active, trusted ──▶ waitingForHeader ── complete header ──▶ done (hand-over)
///       │                              │ bad bytes, time limit, hang-up, error, shed
///       └── no peer, untrusted ────────┴────────────────────────────────▶ done (refused or closed)
///
/// Everything a connection holds while it waits (its pending-header slot, its
/// time limit, the bytes so far) lives in `waitingForHeader` and comes back, as a
/// `Waiting`, in the action that leaves it, so that the handler gives it all back
/// exactly once.
struct ProxyHeaderStateMachine {
    /// What a connection waiting for its header holds.
    struct Waiting {
        /// The proxy's socket address (for the log).
        let peer: SocketAddress
        /// Its place among the connections waiting for a header, under the peer's
        /// address as text (`peerIP`).
        let slot: PendingHeaders.Slot
        /// The header's time limit on the loop's wheel, and where to refuse when it runs out.
        let timer: HeaderTimer
        var parser: ProxyHeaderParser
        /// What has arrived so far; nil before the first read.
        var received: ByteBuffer?

        var receivedBytes: Int { received?.readableBytes ?? 0 }
        var peerIP: String { slot.address }
    }

    private enum State {
        /// Added to a channel that is not active yet.
        case idle
        case waitingForHeader(Waiting)
        /// Handed over, refused, timed out or closed: nothing more for this stage to do.
        case done
    }

    private var state = State.idle
    private let maximumHeaderLength: Int

    init(maximumHeaderLength: Int) {
        self.maximumHeaderLength = maximumHeaderLength
    }

    // MARK: The channel becomes active

    enum ActiveAction {
        /// Started already (added to an active channel, then told it is active): nothing.
        case none
        /// The peer reset before the accept completed: nothing to trust or distrust.
        case closePeerGone
        /// Refuse before reading a byte.
        case refuseUntrusted(peer: SocketAddress)
        /// Wait for the header, within its time limit, counted among the pending
        /// headers (admitting it may shed older ones).
        case admit(PendingHeaders.Slot, HeaderTimer)
    }

    /// The channel is active (or the stage was added to an active one). `isTrusted`
    /// says whether a peer is in `proxy_trusted_proxies`; `makeSlot` makes the
    /// connection's pending-header slot under its address as text.
    mutating func channelActive(
        peer: SocketAddress?, timer: HeaderTimer,
        isTrusted: (SocketAddress) -> Bool, makeSlot: (String) -> PendingHeaders.Slot
    ) -> ActiveAction {
        switch state {
        case .waitingForHeader, .done:
            return .none
        case .idle:
            break
        }
        state = .done
        guard let peer else { return .closePeerGone }
        guard isTrusted(peer) else { return .refuseUntrusted(peer: peer) }
        // (A PROXY port is TCP: every peer has an IP address.)
        let slot = makeSlot(peer.ipText ?? peer.description)
        state = .waitingForHeader(Waiting(
            peer: peer, slot: slot, timer: timer,
            parser: ProxyHeaderParser(maximumHeaderLength: maximumHeaderLength), received: nil
        ))
        return .admit(slot, timer)
    }

    // MARK: Bytes arrive

    enum ReadAction {
        /// Not a complete header yet: wait for more bytes.
        case needMoreData
        /// The header is complete: hand the connection over, then `remaining`, the
        /// bytes that followed the header (possibly none).
        case handOver(ProxyHeader, remaining: ByteBuffer, Waiting)
        /// The bytes are not a PROXY header (or not one this stage accepts).
        case refuseInvalid(ProxyHeaderError, Waiting)
        /// Refused or closed already: the channel is closing, its bytes are not ours to pass on.
        case discard
    }

    mutating func channelRead(_ incoming: ByteBuffer) -> ReadAction {
        switch state {
        case .idle, .done:
            // (No read comes before channelActive.)
            return .discard
        case .waitingForHeader(var waiting):
            state = .done  // while `waiting` is changed: the state holds no second reference to its bytes
            var bytes = incoming
            if var received = waiting.received {
                waiting.received = nil
                received.writeBuffer(&bytes)  // in place: no copy of what came before
                bytes = received
            }
            let result: ProxyHeaderParser.ParseResult
            do {
                result = try bytes.withUnsafeReadableBytes { buffer throws(ProxyHeaderError) in
                    try waiting.parser.parse(buffer: buffer)
                }
            } catch {
                return .refuseInvalid(error, waiting)
            }
            switch result {
            case .needMoreData:
                waiting.received = bytes
                state = .waitingForHeader(waiting)
                return .needMoreData
            case .complete(let header, let consumed):
                var remaining = bytes
                remaining.moveReaderIndex(forwardBy: consumed)
                return .handOver(header, remaining: remaining, waiting)
            }
        }
    }

    // MARK: Time, hang-ups, errors, removal

    enum TimeLimitAction {
        /// The header was done with before the limit: nothing.
        case none
        case refuseTimeout(Waiting)
    }

    mutating func timeLimitReached() -> TimeLimitAction {
        switch state {
        case .idle, .done:
            return .none
        case .waitingForHeader(let waiting):
            state = .done
            return .refuseTimeout(waiting)
        }
    }

    enum ShedAction {
        /// The header was done with before the shed reached the connection: nothing.
        case none
        /// Over a pending-header budget, this waiting connection was picked to make room.
        case shed(Waiting)
    }

    /// The pending-header registry took this connection out to admit a newer one.
    mutating func shed() -> ShedAction {
        switch state {
        case .idle, .done:
            return .none
        case .waitingForHeader(let waiting):
            state = .done
            return .shed(waiting)
        }
    }

    enum InactiveAction {
        case none
        /// The peer hung up before its header was complete.
        case closedEarly(Waiting)
    }

    mutating func channelInactive() -> InactiveAction {
        switch state {
        case .idle, .done:
            state = .done
            return .none
        case .waitingForHeader(let waiting):
            state = .done
            return .closedEarly(waiting)
        }
    }

    enum ErrorAction {
        /// An error before the hand-over ends the connection (its close counts it).
        case close
        /// Refused already: the error is for the stages after this one.
        case forward
    }

    func errorCaught() -> ErrorAction {
        switch state {
        case .idle, .waitingForHeader:
            return .close
        case .done:
            return .forward
        }
    }

    enum RemovedAction {
        case none
        /// Taken out of the pipeline mid-header by someone else: give back what it held.
        case giveBack(Waiting)
    }

    mutating func handlerRemoved() -> RemovedAction {
        switch state {
        case .idle, .done:
            state = .done
            return .none
        case .waitingForHeader(let waiting):
            state = .done
            return .giveBack(waiting)
        }
    }
}

/// A header's time limit: the wheel of the connection's loop, and the context
/// to refuse the connection on when it runs out.
struct HeaderTimer {
    let wheel: LoopTimers
    let context: ChannelHandlerContext
}

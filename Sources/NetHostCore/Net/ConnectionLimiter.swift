import Logging
import NetHostLogging
import struct NIOConcurrencyHelpers.NIOLockedValueBox
import NIOCore
import Synchronization

/// Caps the connections open at once across every port (`max_connections`) and,
/// on the ports services listen on themselves, from one address
/// (`max_connections_per_ip`). A connection past a cap is closed as soon as it
/// is accepted, before any handler sees it; the refusals are logged in summary,
/// not one line each. Before refusing at `max_connections` it makes room, in this
/// order: a connection still waiting for its PROXY header (`shedding`), else the
/// connection idle longest on the accepting loop if it has read nothing for
/// `shed_idle_after` (`idleConnections`); only when neither exists is the new one refused.
public final class ConnectionLimiter: Sendable {
    private let open = Atomic<Int>(0)
    private let limit: Atomic<Int>
    private let limitPerAddress: Atomic<Int>
    /// Open connections by address, for those counted per address; an address
    /// leaves the table with its last connection.
    private let byAddress = NIOLockedValueBox<[PeerAddress: Int]>([:])
    private let refusals: RepeatedEventLog
    /// Asked for a connection to close before a new one is refused at `max_connections`.
    public let shedding: LoadShedding
    /// The established connections, by loop and last read: at `max_connections`, after
    /// `shedding`, the one idle longest makes room if idle `shedIdleAfter` or more.
    private let idleConnections: ConnectionTracker?
    private let shedIdleAfterNanoseconds: Atomic<Int64>
    private let idleShed = Atomic<Int>(0)

    /// `shed_idle_after`: how long a connection must have read nothing before it may
    /// be closed to admit a new one at `max_connections`; zero: never. A reload may change it.
    public var shedIdleAfter: TimeAmount {
        get { .nanoseconds(shedIdleAfterNanoseconds.load(ordering: .relaxed)) }
        set { shedIdleAfterNanoseconds.store(newValue.nanoseconds, ordering: .relaxed) }
    }

    /// Established connections closed, idle, to admit a new one.
    public var shedIdleConnections: Int { idleShed.load(ordering: .relaxed) }

    /// What a connection shed for being idle longest is told (`onDisconnect`'s reason).
    public static let idleShedReason = "shed: server at max_connections"

    /// The cap; a reload may change it (connections past a lowered cap stay open).
    public var maximum: Int {
        get { limit.load(ordering: .relaxed) }
        set { limit.store(newValue, ordering: .relaxed) }
    }

    /// The cap per address; a reload may change it.
    public var maximumPerAddress: Int {
        get { limitPerAddress.load(ordering: .relaxed) }
        set { limitPerAddress.store(newValue, ordering: .relaxed) }
    }

    public init(
        maximum: Int, maximumPerAddress: Int = NetworkSettings().maxConnectionsPerIP,
        shedding: LoadShedding = LoadShedding(),
        idleConnections: ConnectionTracker? = nil, shedIdleAfter: TimeAmount = NetworkSettings().shedIdleAfterAmount,
        logger: Logger
    ) {
        self.shedding = shedding
        self.idleConnections = idleConnections
        self.shedIdleAfterNanoseconds = Atomic(shedIdleAfter.nanoseconds)
        self.limit = Atomic(maximum)
        self.limitPerAddress = Atomic(maximumPerAddress)
        self.refusals = RepeatedEventLog(logger: logger)
    }

    /// Open connections from `address` among those counted per address.
    public func openConnections(from address: SocketAddress) -> Int {
        guard let key = PeerAddress(address) else { return 0 }
        return byAddress.withLockedValue { $0[key] ?? 0 }
    }

    public var openConnections: Int { open.load(ordering: .relaxed) }

    /// Counts `channel` in, or closes it if a cap is reached; true if admitted.
    /// `perAddress`: whether its address is counted against `max_connections_per_ip`.
    public func admit(_ channel: any Channel, perAddress: Bool = false) -> Bool {
        let before = open.wrappingAdd(1, ordering: .relaxed).oldValue
        let maximum = self.maximum
        // At the cap, a connection that is not doing useful work yet (one still
        // waiting for its PROXY header) makes room, if a module has one: it closes on
        // its own loop shortly, and the count is briefly one over until it does.
        // Failing that, an established connection long idle makes room.
        guard before < maximum || shedding.shedOne(maxConnections: maximum) || shedIdle(toAdmit: channel, maximum: maximum) else {
            open.wrappingSubtract(1, ordering: .relaxed)
            refuse(channel, "max_connections (\(maximum)) reached: refused a connection")
            return false
        }
        let key = perAddress ? channel.remoteAddress.flatMap(PeerAddress.init) : nil
        if let key {
            let maximumPerAddress = self.maximumPerAddress
            let admitted = byAddress.withLockedValue { counts -> Bool in
                let count = counts[key] ?? 0
                guard count < maximumPerAddress else { return false }
                counts[key] = count + 1
                return true
            }
            guard admitted else {
                open.wrappingSubtract(1, ordering: .relaxed)
                refuse(channel, "max_connections_per_ip (\(maximumPerAddress)) reached: refused a connection from this address")
                return false
            }
        }
        channel.closeFuture.whenComplete { [self] _ in
            open.wrappingSubtract(1, ordering: .relaxed)
            if let key {
                byAddress.withLockedValue { counts in
                    let count = (counts[key] ?? 1) - 1
                    counts[key] = count > 0 ? count : nil
                }
            }
        }
        return true
    }

    /// Closes the connection idle longest on `channel`'s loop (the one running this),
    /// if it has read nothing for `shedIdleAfter`; true if one was. Logged as a
    /// warning with its peer, then summarised with the other sheds every ten seconds
    /// (under a flood of new connections they come from every address).
    private func shedIdle(toAdmit channel: any Channel, maximum: Int) -> Bool {
        guard let idleConnections else { return false }
        let minimum = shedIdleAfter
        guard let shed = idleConnections.shedIdlest(on: channel.eventLoop, idleFor: minimum, reason: Self.idleShedReason) else {
            return false
        }
        idleShed.add(1, ordering: .relaxed)
        let idle = channel.eventLoop.now - shed.lastReceived
        var metadata: Logger.Metadata = [
            "peer": "\(shed.addresses.clientIP):\(shed.addresses.clientPort)", "conn": "\(shed.id)",
            "service": "\(shed.serviceName)", "idle_seconds": "\(idle.nanoseconds / 1_000_000_000)",
        ]
        if let proxyIP = shed.addresses.proxyIP { metadata["proxy"] = "\(proxyIP)" }
        refusals.record(
            "shed the connection idle longest, to admit a new one (max_connections is \(maximum), shed_idle_after is "
                + "\(Double(minimum.nanoseconds) / 1e9) s)",
            from: "any address", level: .warning, metadata: metadata
        )
        return true
    }

    private func refuse(_ channel: any Channel, _ reason: String) {
        refusals.record(reason, from: channel.remoteAddress?.ipText ?? "?", level: .warning)
        channel.close(promise: nil)
    }

    /// Logs the summaries of refusals that repeated.
    public func flushSummaries() { refusals.flush() }
}

/// A peer's IP address as a hashable key, without building its text per connection.
struct PeerAddress: Hashable, Sendable {
    private let high: UInt64
    private let low: UInt64
    private let isIPv6: Bool

    init?(_ address: SocketAddress) {
        switch address {
        case .v4(let v4):
            high = 0
            low = UInt64(v4.address.sin_addr.s_addr)
            isIPv6 = false
        case .v6(let v6):
            let words = withUnsafeBytes(of: v6.address.sin6_addr) { bytes in
                (bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self), bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
            }
            (high, low) = words
            isIPv6 = true
        default:
            return nil
        }
    }
}

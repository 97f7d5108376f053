import Logging
import NetHostLogging
import struct NIOConcurrencyHelpers.NIOLockedValueBox
import NIOCore
import Synchronization

/// Caps the connections open at once across every port (`max_connections`) and,
/// on the ports services listen on themselves, from one address
/// (`max_connections_per_ip`). A connection past a cap is closed as soon as it
/// is accepted, before any handler sees it; the refusals are logged in summary,
/// not one line each. Before refusing at `max_connections` it asks `shedding` to
/// make room.
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
        shedding: LoadShedding = LoadShedding(), logger: Logger
    ) {
        self.shedding = shedding
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
        guard before < maximum || shedding.shedOne(maxConnections: maximum) else {
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

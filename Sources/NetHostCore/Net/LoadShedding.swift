import NIOConcurrencyHelpers
import Synchronization

/// Connections the host may close to make room at `max_connections`, rather than
/// refuse the new one. A module that holds connections not yet doing useful work
/// (net_proxy: those still waiting for their PROXY header) registers a source; at
/// the cap the limiter asks the sources in turn to give one up. Behind a load
/// balancer the new connection is almost always a good one, and the oldest
/// connection still without a header almost always a flood's.
public final class LoadShedding: Sendable {
    /// Closes one connection of its choosing to admit a new one past
    /// `max_connections` (passed in, for its log line); false if it has none.
    public typealias Source = @Sendable (_ maxConnections: Int) -> Bool

    /// What `add` returns, to `remove` the source with (a module that unloads).
    public struct Registration: Hashable, Sendable {
        fileprivate let id: Int
    }

    private let sources = NIOLockedValueBox<[(id: Int, shed: Source)]>([])
    private let nextID = Atomic<Int>(0)

    public init() {}

    public func add(_ source: @escaping Source) -> Registration {
        let id = nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        sources.withLockedValue { $0.append((id, source)) }
        return Registration(id: id)
    }

    public func remove(_ registration: Registration) {
        sources.withLockedValue { $0.removeAll { $0.id == registration.id } }
    }

    /// Asks each source in turn, oldest registration first, until one closes a
    /// connection; true if one did. The sources run outside the lock.
    public func shedOne(maxConnections: Int) -> Bool {
        let current = sources.withLockedValue { $0.map(\.shed) }
        return current.contains { $0(maxConnections) }
    }
}

import NIOConcurrencyHelpers

/// The connections whose PROXY header has not arrived yet, oldest first, per
/// address and all together, so that silent or dripping connections cannot hold
/// every slot: past an address's budget (`max_pending_headers_per_ip`) or the
/// budget of all addresses (`proxy_max_pending_headers`) the OLDEST waiting
/// connection is shed to admit the new one. Behind a load balancer the good
/// connections come from the same few addresses as the bad ones, and a good
/// header arrives within microseconds of the connection: the one that has
/// waited longest is almost always the one that will never send it.
///
/// Shared by every event loop, so guarded by one lock; each connection is one
/// `Slot` linked into two intrusive lists (its address's and everyone's), so
/// admitting, shedding and leaving cost O(1) whatever the number waiting. The
/// registry only picks the connection to shed and takes it out of the lists; the
/// caller closes it on that connection's own loop (`Slot.shed`).
final class PendingHeaders: Sendable {
    /// Why a connection was shed: which budget the new connection went over, and its size.
    enum ShedReason: Sendable, Hashable {
        /// `max_pending_headers_per_ip`: the oldest waiting connection from the same address.
        case perAddress(limit: Int)
        /// `proxy_max_pending_headers`: the oldest waiting connection of any address.
        case global(limit: Int)
        /// `max_connections`: the server is full, and a new connection (of any port)
        /// takes the place of the oldest waiting one.
        case connectionLimit(limit: Int)

        /// The reason as it is counted (`shed.perAddress`, `shed.global`).
        var name: String {
            switch self {
            case .perAddress: "perAddress"
            case .global: "global"
            case .connectionLimit: "connectionLimit"
            }
        }
    }

    /// One connection waiting for its header. Its links are the registry's, read
    /// and written only under the registry's lock (hence unchecked Sendable).
    final class Slot: @unchecked Sendable {
        /// The peer's address, whose budget the connection counts against.
        let address: String
        /// Closes the connection as shed; called at most once, by whichever thread
        /// admitted the connection that displaced it, after the registry's lock is released.
        let shed: @Sendable (ShedReason) -> Void

        fileprivate var isWaiting = false
        fileprivate var older: Slot?
        fileprivate var newer: Slot?
        fileprivate var olderFromAddress: Slot?
        fileprivate var newerFromAddress: Slot?

        init(address: String, shed: @escaping @Sendable (ShedReason) -> Void) {
            self.address = address
            self.shed = shed
        }
    }

    /// A connection the registry took out to admit another: the caller calls
    /// `slot.shed(reason)`.
    struct Shed {
        let slot: Slot
        let reason: ShedReason
    }

    /// The two ends of one list and its length.
    private struct Ends {
        var oldest: Slot?
        var newest: Slot?
        var count = 0
    }

    private struct State {
        var all = Ends()
        var byAddress: [String: Ends] = [:]

        mutating func append(_ slot: Slot) {
            slot.isWaiting = true
            slot.older = all.newest
            all.newest?.newer = slot
            all.newest = slot
            if all.oldest == nil { all.oldest = slot }
            all.count += 1

            var address = byAddress[slot.address] ?? Ends()
            slot.olderFromAddress = address.newest
            address.newest?.newerFromAddress = slot
            address.newest = slot
            if address.oldest == nil { address.oldest = slot }
            address.count += 1
            byAddress[slot.address] = address
        }

        /// Takes `slot` out of both lists; nothing if it is not in them.
        mutating func remove(_ slot: Slot) {
            guard slot.isWaiting else { return }
            slot.isWaiting = false
            if let older = slot.older { older.newer = slot.newer } else { all.oldest = slot.newer }
            if let newer = slot.newer { newer.older = slot.older } else { all.newest = slot.older }
            slot.older = nil
            slot.newer = nil
            all.count -= 1

            guard var address = byAddress[slot.address] else { return }
            if let older = slot.olderFromAddress { older.newerFromAddress = slot.newerFromAddress } else { address.oldest = slot.newerFromAddress }
            if let newer = slot.newerFromAddress { newer.olderFromAddress = slot.olderFromAddress } else { address.newest = slot.olderFromAddress }
            slot.olderFromAddress = nil
            slot.newerFromAddress = nil
            address.count -= 1
            byAddress[slot.address] = address.count > 0 ? address : nil
        }
    }

    private let state = NIOLockedValueBox(State())

    init() {}

    deinit {
        // The lists link their slots both ways: unlink them, or they keep each other.
        state.withLockedValue { state in
            while let oldest = state.all.oldest { state.remove(oldest) }
        }
    }

    /// Adds `slot` as the newest waiting connection, then takes out the oldest of its
    /// address while the address holds more than `perAddress`, then the oldest of
    /// all while there are more than `overall` (after a reload lowered a budget, that
    /// may be several). Never `slot` itself (both budgets are at least 1). The caller
    /// sheds what is returned, which no longer counts against any budget.
    func admit(_ slot: Slot, perAddress: Int, overall: Int) -> [Shed] {
        state.withLockedValue { state in
            state.append(slot)
            var shed: [Shed] = []
            while let address = state.byAddress[slot.address], address.count > perAddress,
                  let oldest = address.oldest, oldest !== slot {
                state.remove(oldest)
                shed.append(Shed(slot: oldest, reason: .perAddress(limit: perAddress)))
            }
            while state.all.count > overall, let oldest = state.all.oldest, oldest !== slot {
                state.remove(oldest)
                shed.append(Shed(slot: oldest, reason: .global(limit: overall)))
            }
            return shed
        }
    }

    /// Takes out the oldest waiting connection of any address, to make room at
    /// `max_connections`; nil if none is waiting. The caller sheds it.
    func takeOldest(maxConnections: Int) -> Shed? {
        state.withLockedValue { state in
            guard let oldest = state.all.oldest else { return nil }
            state.remove(oldest)
            return Shed(slot: oldest, reason: .connectionLimit(limit: maxConnections))
        }
    }

    /// The connection's header is done with (or it closed): its slot is free. Nothing
    /// if it was shed or left already.
    func leave(_ slot: Slot) {
        state.withLockedValue { $0.remove(slot) }
    }

    /// Connections waiting for their header right now.
    var count: Int { state.withLockedValue { $0.all.count } }

    /// Connections from `address` waiting for their header right now.
    func count(from address: String) -> Int { state.withLockedValue { $0.byAddress[address]?.count ?? 0 } }

    /// Addresses with a pending header right now (for tests and status).
    var addressCount: Int { state.withLockedValue { $0.byAddress.count } }
}

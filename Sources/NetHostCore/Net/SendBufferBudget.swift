import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The memory every connection's send buffer holds, added up across the process,
/// against `network_settings.max_send_buffer_total`.
///
/// A connection reserves what its buffer grows by before it keeps the bytes and gives
/// it back as they are sent; a reservation that would pass the limit is refused, and
/// the connection that asked is closed (`Connection`), so many slow readers together
/// cannot push the machine into swap. Counted in buffer storage, as
/// `max_send_buffer_size` is (see `SendBacklog`).
///
/// One per process (`shared`); a test gives its connections a budget of their own
/// through `NetworkSettings.sendBufferBudget` so that it sees only its own.
public final class SendBufferBudget: Sendable, Equatable {
    public static let shared = SendBufferBudget()

    private let reserved = Atomic<Int>(0)
    private let refusals = Atomic<Int>(0)

    public init() {}

    /// Bytes reserved now, by every connection together.
    public var used: Int { reserved.load(ordering: .relaxed) }

    /// Connections closed because their buffer would have passed the limit.
    public var shedConnections: Int { refusals.load(ordering: .relaxed) }

    /// Reserves `bytes` unless that passes `limit`; false (and nothing reserved) if it would.
    func reserve(_ bytes: Int, limit: Int) -> Bool {
        var current = reserved.load(ordering: .relaxed)
        while true {
            let (wanted, overflow) = current.addingReportingOverflow(bytes)
            guard !overflow, wanted <= limit else { return false }
            let (exchanged, original) = reserved.compareExchange(
                expected: current, desired: wanted, ordering: .relaxed
            )
            if exchanged { return true }
            current = original
        }
    }

    func release(_ bytes: Int) {
        reserved.subtract(bytes, ordering: .relaxed)
    }

    func countShed() {
        refusals.add(1, ordering: .relaxed)
    }

    public static func == (lhs: SendBufferBudget, rhs: SendBufferBudget) -> Bool { lhs === rhs }

    /// The default `max_send_buffer_total`: 512 MiB, or a quarter of the machine's
    /// memory where that is less (a small VM, a board).
    public static let defaultLimit: Int = {
        let cap = 512 * 1024 * 1024
        let pages = sysconf(Int32(_SC_PHYS_PAGES))
        let pageSize = sysconf(Int32(_SC_PAGESIZE))
        guard pages > 0, pageSize > 0 else { return cap }
        let (memory, overflow) = pages.multipliedReportingOverflow(by: pageSize)
        guard !overflow else { return cap }
        return max(16 * 1024 * 1024, min(cap, memory / 4))
    }()
}

import NetHostCore
import NIOConcurrencyHelpers
import NIOCore
import Synchronization

/// What the server says about itself to its modules: how full it is and whether it
/// is leaving. A module that reports to a load balancer (the `agent_check` module)
/// reads it; the server writes it. Reading takes no lock on the connection path:
/// the load is the limiter's own atomics, the leaving flag one more.
public final class HostStatus: Sendable {
    /// Connections open now against `max_connections`.
    public struct Load: Sendable, Equatable {
        public var open: Int
        public var maximum: Int

        public init(open: Int, maximum: Int) {
            self.open = open
            self.maximum = maximum
        }
    }

    private let leaving = Atomic<Bool>(false)
    /// The server's limiter, once the server has one (it is made after the modules load).
    private let limiter = NIOLockedValueBox<ConnectionLimiter?>(nil)
    /// How long a graceful stop keeps the ports open after it starts leaving, so that a
    /// load balancer polling a module hears it before they close; zero by default
    /// (listeners close at once), set by the module that does the telling.
    private let noticeNanoseconds = Atomic<Int64>(0)

    public init() {}

    /// Whether a graceful stop has begun (SIGTERM, SIGINT, SIGQUIT): the server is
    /// leaving and wants no new connections, whether or not its ports are still open.
    public var isLeaving: Bool { leaving.load(ordering: .acquiring) }

    /// The connections open now, against `max_connections`; nil before the server
    /// has its limiter (no port is open then either).
    public var load: Load? {
        limiter.withLockedValue { $0 }.map { Load(open: $0.openConnections, maximum: $0.maximum) }
    }

    /// The notice a graceful stop gives before the ports close (see `noticeNanoseconds`).
    public var leavingNotice: TimeAmount {
        get { .nanoseconds(noticeNanoseconds.load(ordering: .relaxed)) }
        set { noticeNanoseconds.store(max(0, newValue.nanoseconds), ordering: .relaxed) }
    }

    func attach(_ limiter: ConnectionLimiter) {
        self.limiter.withLockedValue { $0 = limiter }
    }

    /// The graceful stop has begun; returns the notice to give before the ports close.
    func beginLeaving() -> TimeAmount {
        leaving.store(true, ordering: .releasing)
        return leavingNotice
    }
}

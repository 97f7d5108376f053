import Logging
import NetHostLogging
import NIOCore
import Synchronization

/// Caps the connections open at once across every port (`max_connections`).
/// A connection past the cap is closed as soon as it is accepted, before any
/// handler sees it; the refusals are logged in summary, not one line each.
public final class ConnectionLimiter: Sendable {
    private let open = Atomic<Int>(0)
    private let limit: Atomic<Int>
    private let refusals: RepeatedEventLog

    /// The cap; a reload may change it (connections past a lowered cap stay open).
    public var maximum: Int {
        get { limit.load(ordering: .relaxed) }
        set { limit.store(newValue, ordering: .relaxed) }
    }

    public init(maximum: Int, logger: Logger) {
        self.limit = Atomic(maximum)
        self.refusals = RepeatedEventLog(logger: logger)
    }

    public var openConnections: Int { open.load(ordering: .relaxed) }

    /// Counts `channel` in, or closes it if the cap is reached; true if admitted.
    public func admit(_ channel: any Channel) -> Bool {
        let before = open.wrappingAdd(1, ordering: .relaxed).oldValue
        let maximum = self.maximum
        guard before < maximum else {
            open.wrappingSubtract(1, ordering: .relaxed)
            let peer = channel.remoteAddress?.ipText ?? "?"
            refusals.record(
                "max_connections (\(maximum)) reached: refused a connection", from: peer, level: .warning
            )
            channel.close(promise: nil)
            return false
        }
        channel.closeFuture.whenComplete { [self] _ in
            open.wrappingSubtract(1, ordering: .relaxed)
        }
        return true
    }

    /// Logs the summaries of refusals that repeated.
    public func flushSummaries() { refusals.flush() }
}

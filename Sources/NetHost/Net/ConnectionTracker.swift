import NIOConcurrencyHelpers
import NIOCore

/// Every open connection's channel, so a graceful stop can close them all.
public final class ConnectionTracker: Sendable {
    private let channels = NIOLockedValueBox<[ObjectIdentifier: any Channel]>([:])

    public init() {}

    func add(_ channel: any Channel) {
        channels.withLockedValue { $0[ObjectIdentifier(channel)] = channel }
    }

    func remove(_ channel: any Channel) {
        _ = channels.withLockedValue { $0.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    public var count: Int { channels.withLockedValue { $0.count } }

    /// Closes every tracked connection; each listener gets its `onDisconnect`.
    public func closeAll() -> EventLoopFuture<Void>? {
        let open = channels.withLockedValue { Array($0.values) }
        guard let first = open.first else { return nil }
        let futures = open.map { channel in channel.close().recover { _ in } }
        return EventLoopFuture.andAllComplete(futures, on: first.eventLoop)
    }
}

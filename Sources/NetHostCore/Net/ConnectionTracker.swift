import NIOConcurrencyHelpers
import NIOCore

/// Every open connection, so a graceful stop can close them all.
///
/// Each event loop keeps its own connections in an array that only that loop
/// touches; a connection knows its index, so leaving is a swap-remove. An open
/// connection costs one array slot, and no lock is held while it comes or goes
/// beyond finding its loop's array.
public final class ConnectionTracker: Sendable {
    private final class LoopConnections {
        var connections: [Connection] = []
    }

    private let loops = NIOLockedValueBox<[ObjectIdentifier: NIOLoopBound<LoopConnections>]>([:])

    public init() {}

    private func connections(on eventLoop: any EventLoop) -> LoopConnections {
        let key = ObjectIdentifier(eventLoop)
        return loops.withLockedValue { loops in
            if let existing = loops[key] { return existing }
            let made = NIOLoopBound(LoopConnections(), eventLoop: eventLoop)
            loops[key] = made
            return made
        }.value
    }

    func add(_ connection: Connection) {
        let list = connections(on: connection.eventLoop)
        connection.trackerIndex = list.connections.count
        list.connections.append(connection)
    }

    func remove(_ connection: Connection) {
        let index = connection.trackerIndex
        guard index >= 0 else { return }
        let list = connections(on: connection.eventLoop)
        let last = list.connections.count - 1
        if index != last {
            list.connections[index] = list.connections[last]
            list.connections[index].trackerIndex = index
        }
        list.connections.removeLast()
        connection.trackerIndex = -1
    }

    /// Closes every tracked connection; each listener gets its `onDisconnect`.
    public func closeAll() -> EventLoopFuture<Void>? {
        let loops = self.loops.withLockedValue { Array($0.values) }
        guard let first = loops.first else { return nil }
        let closing = loops.map { bound in
            bound.eventLoop.flatSubmit {
                let channels = bound.value.connections.map(\.channel)
                return EventLoopFuture.andAllComplete(channels.map { $0.close().recover { _ in } }, on: bound.eventLoop)
            }
        }
        return EventLoopFuture.andAllComplete(closing, on: first.eventLoop)
    }

    /// What each open connection of `service` holds for sending, as its limits count it
    /// (`Connection.queuedSendStorage`), read on each connection's loop.
    public func queuedSendStorage(service: String) async -> [Int] {
        let loops = self.loops.withLockedValue { Array($0.values) }
        var result: [Int] = []
        for bound in loops {
            let counts = try? await bound.eventLoop.submit {
                bound.value.connections.filter { $0.serviceName == service }.map(\.queuedSendStorage)
            }.get()
            result += counts ?? []
        }
        return result
    }
}

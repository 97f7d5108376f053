import NIOConcurrencyHelpers
import NIOCore

/// Every open connection, so a graceful stop can close them all and, at
/// `max_connections`, the one idle longest can make room (`shedIdlest`).
///
/// Each event loop keeps its own connections in a list that only that loop
/// touches, ordered by when each last read bytes from its peer: the head has been
/// idle longest. The list is intrusive (the links are fields of `Connection`), so
/// a read moves its connection to the tail, and a connection leaves, in O(1) with
/// no allocation and no lock: a connection holds its loop's list. The lock is
/// taken only to find a loop's list, when a connection arrives and when the
/// limiter looks for one to shed.
public final class ConnectionTracker: Sendable {
    /// One loop's connections, least recently read first; used on that loop only.
    final class LoopConnections {
        /// Idle longest. Holds the chain: each connection holds the next (`readLater`).
        fileprivate(set) var first: Connection?
        /// Read most recently. Not retained: the connection before it (or `first`)
        /// holds it for as long as it is linked.
        fileprivate(set) unowned(unsafe) var last: Connection?
        /// Connections this loop has tracked since start, by service and local port, for
        /// the metrics (`connectionCounts`): one dictionary update per connection, on its
        /// own loop, so counting takes no lock. Those still open are counted from the list.
        fileprivate var opened: [ServicePort: Int] = [:]
        /// Bytes in and out of this loop's closed connections, by service (their ports
        /// are gone by then); the open ones' are added when read (`byteCounts`).
        fileprivate var closedBytes: [String: ServiceBytes] = [:]
        /// Told when the list is next empty (`succeedWhenAllClosed`).
        fileprivate var whenEmpty: [() -> Void] = []

        fileprivate func append(_ connection: Connection) {
            connection.readEarlier = last
            connection.readLater = nil
            if let last {
                last.readLater = connection
            } else {
                first = connection
            }
            last = connection
        }

        fileprivate func unlink(_ connection: Connection) {
            let earlier = connection.readEarlier, later = connection.readLater
            if let later {
                later.readEarlier = earlier
            } else {
                last = earlier
            }
            connection.readEarlier = nil
            connection.readLater = nil
            // Last: this store may release `connection`, which the one before held.
            if let earlier {
                earlier.readLater = later
            } else {
                first = later
            }
            if first == nil, !whenEmpty.isEmpty {
                let waiting = whenEmpty
                whenEmpty.removeAll()
                for tell in waiting { tell() }
            }
        }

        /// `connection` read from its peer: it goes to the tail (O(1), and nothing
        /// at all when it is already there, as on a busy connection's every read).
        func touch(_ connection: Connection) {
            guard last !== connection else { return }
            withExtendedLifetime(connection) {
                unlink(connection)
                append(connection)
            }
        }

        /// Every connection, idle longest first.
        var all: [Connection] {
            var result: [Connection] = []
            var next = first
            while let connection = next {
                result.append(connection)
                next = connection.readLater
            }
            return result
        }
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
        connection.trackedIn = list
        list.append(connection)
        list.opened[ServicePort(connection), default: 0] += 1
    }

    func remove(_ connection: Connection) {
        guard let list = connection.trackedIn else { return }
        connection.trackedIn = nil
        list.unlink(connection)
        list.closedBytes[connection.serviceName, default: ServiceBytes()].add(connection)
    }

    /// At `max_connections`: on `eventLoop`, which must be the caller's (the loop
    /// that accepted the new connection), closes the connection that has read
    /// nothing from its peer for longest, if that is at least `minimum`, and returns
    /// it; nil if none has been idle that long. Only this loop's connections are
    /// considered: looking at another loop's would mean waiting for it, or closing a
    /// connection that has read meanwhile. NIO hands accepted connections to the
    /// loops in turn, so each loop holds a similar mix.
    /// Its listener's `onDisconnect` is told `reason`.
    func shedIdlest(on eventLoop: any EventLoop, idleFor minimum: TimeAmount, reason: String) -> Connection? {
        guard minimum > .zero, eventLoop.inEventLoop else { return nil }
        let key = ObjectIdentifier(eventLoop)
        guard let bound = loops.withLockedValue({ $0[key] }), let idlest = bound.value.first else { return nil }
        guard eventLoop.now - idlest.lastReceived >= minimum else { return nil }
        // Out of the list first: a second admission before its channel has gone
        // must find the next one, not this one again.
        remove(idlest)
        idlest.abort(reason: reason)
        return idlest
    }

    /// Tells every tracked connection's listener `status` (`onstatus(conn, status)`),
    /// each on its own loop; done once every loop has.
    public func announce(status: String) async {
        let loops = self.loops.withLockedValue { Array($0.values) }
        for bound in loops {
            try? await bound.eventLoop.submit {
                for connection in bound.value.all { connection.status(status) }
            }.get()
        }
    }

    /// Succeeds `promise` once no connection is open on any loop that had one when
    /// asked (each loop's list empty at least once since), so a drain waits for that
    /// instead of counting again and again. The caller still completes `promise` itself
    /// when it stops waiting first (a later completion is ignored): nothing here keeps
    /// a promise that could be left unfulfilled. Connections made later (a module's
    /// outgoing ones) are for the caller to count afterwards.
    public func succeedWhenAllClosed(_ promise: EventLoopPromise<Void>) {
        let loops = self.loops.withLockedValue { Array($0.values) }
        guard !loops.isEmpty else { return promise.succeed() }
        let loopsNotEmpty = NIOLockedValueBox(loops.count)
        for bound in loops {
            bound.eventLoop.execute {
                let tell = {
                    let left = loopsNotEmpty.withLockedValue { count in
                        count -= 1
                        return count
                    }
                    if left == 0 { promise.succeed() }
                }
                if bound.value.first == nil { tell() } else { bound.value.whenEmpty.append(tell) }
            }
        }
    }

    /// How many connections are open, counted on each one's loop.
    public func count() async -> Int {
        let loops = self.loops.withLockedValue { Array($0.values) }
        var total = 0
        for bound in loops {
            total += (try? await bound.eventLoop.submit { bound.value.all.count }.get()) ?? 0
        }
        return total
    }

    /// Closes every tracked connection; each listener gets its `onDisconnect`.
    public func closeAll() -> EventLoopFuture<Void>? {
        let loops = self.loops.withLockedValue { Array($0.values) }
        guard let first = loops.first else { return nil }
        let closing = loops.map { bound in
            bound.eventLoop.flatSubmit {
                let channels = bound.value.all.map(\.channel)
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
                bound.value.all.filter { $0.serviceName == service }.map(\.queuedSendStorage)
            }.get()
            result += counts ?? []
        }
        return result
    }

    /// Connections by service and the local port they came in on: how many were
    /// handed to the service since start and how many are open now (closed is the
    /// difference), read on each connection's loop. For a metrics page.
    public func connectionCounts() async -> [ServiceConnectionCount] {
        let loops = self.loops.withLockedValue { Array($0.values) }
        var opened: [ServicePort: Int] = [:]
        var open: [ServicePort: Int] = [:]
        for bound in loops {
            guard let counts = try? await bound.eventLoop.submit({ () -> ([ServicePort: Int], [ServicePort: Int]) in
                var openHere: [ServicePort: Int] = [:]
                for connection in bound.value.all { openHere[ServicePort(connection), default: 0] += 1 }
                return (bound.value.opened, openHere)
            }).get() else { continue }
            opened.merge(counts.0, uniquingKeysWith: +)
            open.merge(counts.1, uniquingKeysWith: +)
        }
        return opened.map { key, count in
            ServiceConnectionCount(service: key.service, port: key.port, opened: count, open: open[key] ?? 0)
        }.sorted { ($0.service, $0.port) < ($1.service, $1.port) }
    }
}

extension ConnectionTracker {
    /// Bytes each service got from its peers and wrote to them since start, its closed
    /// connections' and its open ones' together, read on each connection's loop.
    /// Counted per connection (an add per read and per write, on its loop) and summed
    /// when it closes, so the connection path takes no lock and no shared counter.
    public func byteCounts() async -> [String: ServiceBytes] {
        let loops = self.loops.withLockedValue { Array($0.values) }
        var result: [String: ServiceBytes] = [:]
        for bound in loops {
            guard let counts = try? await bound.eventLoop.submit({ () -> [String: ServiceBytes] in
                var counts = bound.value.closedBytes
                for connection in bound.value.all { counts[connection.serviceName, default: ServiceBytes()].add(connection) }
                return counts
            }).get() else { continue }
            result.merge(counts) { ServiceBytes(received: $0.received + $1.received, written: $0.written + $1.written) }
        }
        return result
    }
}

/// What `ConnectionTracker.byteCounts` reports for one service.
public struct ServiceBytes: Sendable, Hashable {
    /// From the peers (after TLS).
    public var received = 0
    /// Written by the service (before TLS, whether or not the peer has taken it yet).
    public var written = 0

    public init(received: Int = 0, written: Int = 0) {
        self.received = received
        self.written = written
    }

    mutating func add(_ connection: Connection) {
        received &+= connection.bytesReceived
        written &+= connection.bytesWritten
    }
}

/// A service and the local port its connections came in on: for a connection behind
/// net_proxy, the PROXY port.
struct ServicePort: Hashable, Sendable {
    let service: String
    let port: Int

    /// Read on the connection's loop, while its channel is open (NIO forgets the
    /// addresses once it closes).
    init(_ connection: Connection) {
        service = connection.serviceName
        port = connection.channel.localAddress?.port ?? 0
    }
}

/// What `ConnectionTracker.connectionCounts` reports for one service and port.
public struct ServiceConnectionCount: Sendable, Hashable {
    public let service: String
    public let port: Int
    /// Handed to the service since start.
    public let opened: Int
    /// Open now.
    public let open: Int
    /// Closed since start (or being closed).
    public var closed: Int { opened - open }
}

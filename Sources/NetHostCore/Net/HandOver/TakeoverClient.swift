import Foundation
import NIOPosix

/// The new NetHost's side of a takeover (see `HandOverServer`): asks the running
/// one for its listening sockets, and, once it accepts on them, tells it so and
/// waits until it has let go of the pidfile and the control socket. Blocking calls:
/// run them off the event loops and the concurrency pool (NIO's blocking pool).
public final class TakeoverClient: Sendable {
    /// The sockets received, this process's own descriptors of them.
    public let listeners: [InheritedListener]
    /// Messages about sockets that came but could not be used (closed again).
    public let refused: [String]
    private let connection: ControlConnection

    /// Connects to `path`, asks, and receives every socket. Throws when no NetHost
    /// answers there or it refuses; nothing has changed for it then.
    public init(path: String, pid: Int32 = getpid()) throws(HandOverError) {
        let connection = try ControlConnection.connecting(to: path)
        var listeners: [InheritedListener] = []
        var refused: [String] = []
        do throws(HandOverError) {
            try connection.send(.request(version: HandOverMessage.version, pid: pid))
            receiving: while true {
                let (message, descriptors) = try connection.receive()
                switch message {
                case .listener(let handed):
                    guard descriptors.count == 1, let descriptor = descriptors.first else {
                        for fd in descriptors { _ = systemClose(fd) }
                        throw HandOverError("a listener message came with \(descriptors.count) descriptors instead of one")
                    }
                    do {
                        listeners.append(try InheritedListener.describing(descriptor, handed: handed))
                    } catch {
                        _ = systemClose(descriptor)
                        refused.append("\(error)")
                    }
                case .end(let count):
                    guard count == listeners.count + refused.count else {
                        throw HandOverError("the running NetHost said it sent \(count) sockets, \(listeners.count + refused.count) came")
                    }
                    break receiving
                case .refused(let reason):
                    throw HandOverError("the running NetHost refused: \(reason)")
                default:
                    for fd in descriptors { _ = systemClose(fd) }
                    throw HandOverError("unexpected message \(message) while receiving the sockets")
                }
            }
        } catch {
            for listener in listeners { _ = systemClose(listener.descriptor) }
            connection.close()
            throw error
        }
        self.connection = connection
        self.listeners = listeners
        self.refused = refused
    }

    /// Says that this process accepts on the sockets now, and waits for the old one
    /// to let go (`released`). Throws when it does not say so: then it may still
    /// be accepting, and this process should not take its place.
    public func commit() throws(HandOverError) {
        defer { connection.close() }
        try connection.send(.ready)
        let (answer, descriptors) = try connection.receive()
        for fd in descriptors { _ = systemClose(fd) }
        guard answer == .released else {
            throw HandOverError("the running NetHost answered \(answer) instead of released")
        }
    }

    /// `init(path:)` on NIO's blocking pool.
    public static func connecting(to path: String) async throws -> TakeoverClient {
        try await NIOThreadPool.singleton.runIfActive { try TakeoverClient(path: path) }
    }

    /// `commit()` on NIO's blocking pool.
    public func committing() async throws {
        try await NIOThreadPool.singleton.runIfActive { [self] in try commit() }
    }

    /// Gives up: the old process keeps serving (it sees the connection close).
    public func abandon() {
        connection.close()
    }
}

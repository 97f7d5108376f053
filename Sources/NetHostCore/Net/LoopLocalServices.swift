import NIOConcurrencyHelpers
import NIOCore

/// The services that the Lua state of each event loop provides, for the services
/// served by one Lua state per loop (`lua_per_loop_services`, `.luaPerLoop`).
/// Each loop other than the primary Lua loop has a `ServiceRegistry` of its own,
/// which only that loop's Lua state writes and only connections accepted on that
/// loop read: no lock is shared between loops on the accept path. Which loops
/// have one is fixed when the server starts.
public final class LoopLocalServices: Sendable {
    private let registries: [ObjectIdentifier: ServiceRegistry]
    /// Failures already logged (`firstReport`), so that a broken loop does not log every
    /// connection. NIO's lock, which ThreadSanitizer sees (it does not see `Synchronization.Mutex` on Linux).
    private let reported = NIOLockedValueBox<Set<String>>([])

    /// No loop has a state of its own: every Lua service runs in the one state.
    public init() {
        registries = [:]
    }

    /// One registry per loop given.
    public init(loops: [any EventLoop]) {
        registries = Dictionary(loops.map { (ObjectIdentifier($0), ServiceRegistry()) }, uniquingKeysWith: { first, _ in first })
    }

    /// The registry of `loop`'s own Lua state; nil for a loop without one.
    public func registry(of loop: any EventLoop) -> ServiceRegistry? {
        registries[ObjectIdentifier(loop)]
    }

    /// The service `name` as `loop`'s own Lua state provides it.
    public func service(named name: String, on loop: any EventLoop) -> NetService? {
        registries[ObjectIdentifier(loop)]?.service(named: name)
    }

    /// True the first time `failure` is asked about: log it then, and not again.
    /// Only on a failure path (a module that did not load in one loop's state).
    public func firstReport(of failure: String) -> Bool {
        reported.withLockedValue { $0.insert(failure).inserted }
    }

    /// Whether any loop has a state of its own.
    public var isEmpty: Bool { registries.isEmpty }
}

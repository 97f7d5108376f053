/// A named network service, as `module:provides("net", { ... })` declares it:
/// its listener and where it listens unless the config says otherwise.
public struct NetService: Sendable {
    /// Where a service's connections run.
    public enum Executor: Sendable, Equatable {
        /// On the one event loop that owns the Lua state, from accept onwards.
        case luaLoop
        /// On any event loop: Swift services use every core.
        case anyLoop
    }

    public let name: String
    public let listener: any ConnectionListener
    public let executor: Executor
    /// The module that provided it (for messages and for unloading).
    public let module: String
    public var defaultPorts: [Int]
    public var defaultInterfaces: [String]?
    /// Prosody's `encryption = "ssl"` (direct TLS); NetHost does not terminate TLS yet.
    public var encryption: String?
    /// A private service only listens on loopback by default.
    public var isPrivate: Bool

    public init(
        name: String,
        listener: any ConnectionListener,
        executor: Executor,
        module: String,
        defaultPorts: [Int] = [],
        defaultInterfaces: [String]? = nil,
        encryption: String? = nil,
        isPrivate: Bool = false
    ) {
        self.name = name
        self.listener = listener
        self.executor = executor
        self.module = module
        self.defaultPorts = defaultPorts
        self.defaultInterfaces = defaultInterfaces
        self.encryption = encryption
        self.isPrivate = isPrivate
    }
}

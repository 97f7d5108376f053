import Logging
import NIOCore

/// A named network service, as `module:provides("net", { ... })` declares it:
/// how its connections are handled and where it listens unless the config says otherwise.
public struct NetService: Sendable {
    /// Where a service's connections run.
    public enum Executor: Sendable, Equatable {
        /// On the one event loop that owns the Lua state, from accept onwards.
        case luaLoop
        /// On any event loop: Swift services use every core.
        case anyLoop
        /// On every event loop, each with a Lua state of its own (`lua_per_loop_services`):
        /// a connection is served by the listener of the state of the loop that
        /// accepted it (`LoopLocalServices`), from accept onwards.
        case luaPerLoop
    }

    /// Whether connections are encrypted from their first byte.
    public enum Encryption: Sendable, Equatable {
        /// Plain bytes first; the service may still start TLS itself (STARTTLS).
        case plain
        /// Prosody's `encryption = "ssl"`: connections start with a TLS handshake
        /// (also after a PROXY header), using the `ssl` certificate.
        case directTLS

        /// The `encryption` field of a Prosody service definition: "ssl" is direct
        /// TLS, and Prosody's port manager treats any other value, or none, as plain.
        public init(prosodyValue: String?) {
            self = prosodyValue == "ssl" ? .directTLS : .plain
        }
    }

    /// How accepted connections are handled.
    public enum Handling: Sendable {
        /// The usual case: a listener's callbacks, on the given loop(s).
        case listener(any ConnectionListener, Executor)
        /// A service that sets up its own pipeline, such as `net_proxy`, which reads
        /// a header first and then hands the connection to another service.
        case pipeline(any ServicePipeline)
    }

    public let name: String
    public let handling: Handling
    /// The module that provided it (for messages and for unloading).
    public let module: String
    /// The host that module was loaded for: "*" for a global module.
    public let host: String
    public var defaultPorts: [Int]
    public var defaultInterfaces: [String]?
    public var encryption: Encryption
    /// A private service only listens on loopback by default.
    public var isPrivate: Bool
    /// Whether its connections count against `max_connections` (and `_per_ip`).
    /// An operator's port (the agent check, the metrics page) does not: a load
    /// balancer's check or a scrape must get through when the server is full, and
    /// is no part of the load it reports.
    public var countsAgainstConnectionLimits: Bool

    public init(
        name: String,
        handling: Handling,
        module: String,
        host: String = "*",
        defaultPorts: [Int] = [],
        defaultInterfaces: [String]? = nil,
        encryption: Encryption = .plain,
        isPrivate: Bool = false,
        countsAgainstConnectionLimits: Bool = true
    ) {
        self.name = name
        self.handling = handling
        self.module = module
        self.host = host
        self.defaultPorts = defaultPorts
        self.defaultInterfaces = defaultInterfaces
        self.encryption = encryption
        self.isPrivate = isPrivate
        self.countsAgainstConnectionLimits = countsAgainstConnectionLimits
    }

    /// Whether connections start with TLS.
    public var usesDirectTLS: Bool { encryption == .directTLS }

    /// The listener, for services that have one.
    public var listener: (any ConnectionListener)? {
        if case .listener(let listener, _) = handling { return listener }
        return nil
    }

    /// Where connections accepted on `port` should live; pipelines decide per
    /// port, from the services they hand connections to.
    public func executor(forPort port: Int, services: ServiceRegistry) -> Executor {
        switch handling {
        case .listener(_, let executor): return executor
        case .pipeline(let pipeline): return pipeline.executor(forPort: port, services: services)
        }
    }

    /// Where `port` accepts: where its connections live, except that a Lua service
    /// with direct TLS (on its own port, or behind a pipeline such as net_proxy's)
    /// accepts on the Swift loops, which run the handshake and the encryption and
    /// relay plaintext to the Lua loop (`LuaLoopTLSRelay`), so that a flood of
    /// handshakes does not hold up the Lua loop.
    public func acceptExecutor(forPort port: Int, services: ServiceRegistry) -> Executor {
        let executor = self.executor(forPort: port, services: services)
        // A per-loop service has a Lua state on every loop: TLS runs where the connection is.
        guard executor == .luaLoop else { return executor }
        let served: NetService? = switch handling {
        case .listener: self
        case .pipeline(let pipeline): pipeline.handOverTarget(forPort: port).flatMap { services.service(named: $0) }
        }
        return served?.usesDirectTLS == true ? .anyLoop : .luaLoop
    }
}

/// What a custom pipeline needs from the host for each accepted connection. A class:
/// each connection's stages keep it, and one reference is cheaper to pass and keep
/// than a copy of all its references.
public final class PipelineContext: Sendable {
    public let services: ServiceRegistry
    private let liveSettings: LiveValue<NetworkSettings>
    /// The settings in force for a connection accepted now (a reload may change them).
    public var settings: NetworkSettings { liveSettings.value }
    public let logger: Logger
    public let tracker: ConnectionTracker
    /// The loop that runs Lua: connections of Lua services must live on it.
    public let luaLoop: any EventLoop
    /// The TLS contexts, for services with `encryption = "ssl"` and for STARTTLS.
    public let tls: TLSContexts?
    /// The services of the other loops' Lua states, for `.luaPerLoop` services.
    public let loopLocal: LoopLocalServices

    public init(
        services: ServiceRegistry,
        settings: LiveValue<NetworkSettings>,
        logger: Logger,
        tracker: ConnectionTracker,
        luaLoop: any EventLoop,
        tls: TLSContexts? = nil,
        loopLocal: LoopLocalServices = LoopLocalServices()
    ) {
        self.tls = tls
        self.loopLocal = loopLocal
        self.services = services
        self.luaLoop = luaLoop
        self.liveSettings = settings
        self.logger = logger
        self.tracker = tracker
    }

    /// Adds the stages that hand a connection to `service`'s listener: TLS first
    /// when the service uses direct TLS (`TLSSettings.addServerStages`: the TLS
    /// stage and its handshake timeout), then the listener's stage, which runs
    /// `onconnect` at once. Added after `position`; call on the channel's loop.
    /// Past `ssl_max_handshakes_per_second` a direct-TLS connection is closed
    /// instead, and nothing is added.
    public func addServiceStages(
        to pipeline: ChannelPipeline.SynchronousOperations,
        position: ChannelPipeline.SynchronousOperations.Position = .last,
        service: NetService,
        listener: any ConnectionListener,
        addresses: ConnectionAddresses?,
        origin: (any Sendable)?
    ) throws {
        let listener = try self.listener(of: service, given: listener, on: pipeline.eventLoop)
        // The context in force now: a reload may have replaced it since the port opened.
        let tls = self.tls?.settings(forService: service.name)
        var position = position
        if service.usesDirectTLS {
            guard let tls else { throw MissingCertificate(service: service.name) }
            // Past ssl_max_handshakes_per_second: closed before any stage is added
            // (the service never hears of it).
            guard let tlsStages = try tls.addServerStages(
                to: pipeline, position: position, serviceName: service.name, addresses: addresses
            ) else {
                pipeline.close(promise: nil)
                return
            }
            position = .after(tlsStages)
            if case .listener(_, .luaLoop) = service.handling, pipeline.eventLoop !== luaLoop {
                // A Lua service's TLS connection accepted on a Swift loop: the TLS stays
                // here, and plaintext goes to the Lua loop through a socket pair.
                let settings = self.settings
                let glue = RelayGlueHandler(closeGrace: settings.sendTimeoutAmount)
                let relay = LuaLoopTLSRelay(luaSide: LuaLoopTLSRelay.LuaSide(
                    luaLoop: luaLoop, serviceName: service.name, listener: listener, settings: settings,
                    addresses: addresses, origin: origin, logger: logger, tracker: tracker, tls: tls
                ), glue: glue)
                try pipeline.addHandler(relay, position: position)
                try pipeline.addHandler(glue, position: .after(relay))
                return
            }
        }
        let handler = ConnectionHandler(
            serviceName: service.name,
            listener: listener,
            settings: settings,
            addresses: addresses,
            origin: origin,
            logger: logger,
            tracker: tracker,
            tls: tls,
            startsWithTLS: service.usesDirectTLS
        )
        try pipeline.addHandler(handler, position: position)
    }

    /// A service asks for TLS but no certificate is configured for it.
    public struct MissingCertificate: Error, CustomStringConvertible {
        public let service: String
        package init(service: String) { self.service = service }
        public var description: String {
            "service '\(service)' uses TLS (encryption = \"ssl\") but no certificate is configured: set ssl = { certificate = ..., key = ... } "
                + "(or \(service)_ssl, or put \(service).crt and \(service).key in the certificates folder)"
        }
    }
}

/// A service that builds its own pipeline for each accepted connection.
public protocol ServicePipeline: Sendable {
    /// Which loop a port's connections should be accepted on: the Lua loop when
    /// they will end up in a Lua service, so they never hop between threads.
    func executor(forPort port: Int, services: ServiceRegistry) -> NetService.Executor
    /// Sets up the pipeline of a connection accepted on `port`.
    func initialize(channel: any Channel, port: Int, context: PipelineContext) -> EventLoopFuture<Void>
    /// The service a port's connections are handed to once the pipeline is done
    /// with them (net_proxy: the port's mapping), so that the host can check it.
    func handOverTarget(forPort port: Int) -> String?
    /// What is unsafe in how the service is set up, given where it will listen
    /// (net_proxy: trusting everyone on a port others can reach), for `nethost check`.
    func audit(listeningOn addresses: [ListeningAddress]) -> [AuditFinding]
}

extension ServicePipeline {
    public func handOverTarget(forPort port: Int) -> String? { nil }
    public func audit(listeningOn addresses: [ListeningAddress]) -> [AuditFinding] { [] }
}

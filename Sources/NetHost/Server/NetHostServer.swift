import Logging
import NetHostConfig
import NetHostCore
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The whole host: loads the modules a config enables, opens the ports their
/// services need and drives the connections. Lua runs on one loop of the group;
/// Swift services use all of them.
public final class NetHostServer: Sendable {
    public struct Options: Sendable {
        public var options: any OptionSource
        public var configDirectory: String
        public var nativeModules: [any NativeModule.Type]
        public var pluginPaths: [String]
        public var shippedModules: String?
        public var threads: Int

        public init(
            options: any OptionSource,
            configDirectory: String,
            nativeModules: [any NativeModule.Type] = [],
            pluginPaths: [String] = [],
            shippedModules: String? = nil,
            threads: Int = UsableProcessors.count
        ) {
            self.options = options
            self.configDirectory = configDirectory
            self.nativeModules = nativeModules
            self.pluginPaths = pluginPaths
            self.shippedModules = shippedModules
            self.threads = threads
        }
    }

    public let group: MultiThreadedEventLoopGroup
    public let luaLoop: any EventLoop
    public let services = ServiceRegistry()
    public let tracker = ConnectionTracker()
    public let ports: PortManager
    public let problems = ProblemLog()
    /// The options in force; `reload` replaces them.
    public let options: LiveOptions
    private let liveSettings: LiveValue<NetworkSettings>
    public var settings: NetworkSettings { liveSettings.value }
    /// The TLS contexts of the services; `reload` reads the certificates again.
    public let tls: TLSContexts
    public let limiter: ConnectionLimiter
    private let configuration: Options
    private let logger: Logger
    private let modules: NIOLoopBound<ModuleManager>
    /// Logs the summaries of repeated refusals every ten seconds (`scheduleSummaries`).
    private let summaryTask = NIOLockedValueBox<RepeatedTask?>(nil)
    /// Set by the first shutdown; later calls return at once (the loops are gone).
    private let stopped = Atomic<Bool>(false)

    /// Loads the modules (on the Lua loop); no port is opened yet.
    public init(_ configuration: Options, logger: Logger) throws {
        let options = LiveOptions(configuration.options)
        var configuration = configuration
        configuration.options = options
        self.options = options
        self.configuration = configuration
        self.logger = logger
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, configuration.threads))
        self.luaLoop = group.next()
        self.ports = PortManager(group: group, logger: logger)
        let settings = Self.networkSettings(from: options, logger: logger, problems: problems)
        self.liveSettings = LiveValue(settings)
        self.limiter = ConnectionLimiter(maximum: settings.maxConnections, logger: logger)
        self.tls = TLSContexts(logger: logger)
        let finder = LuaModuleFinder(pluginPaths: configuration.pluginPaths, shippedModules: configuration.shippedModules)
        let (group, luaLoop, services, problems) = (self.group, self.luaLoop, self.services, self.problems)
        do {
            self.modules = try luaLoop.submit {
                let manager = try ModuleManager(
                    group: group, luaLoop: luaLoop, options: configuration.options, services: services,
                    natives: configuration.nativeModules, finder: finder,
                    configDirectory: configuration.configDirectory, logger: logger, problems: problems
                )
                let failures = manager.loadEnabledModules()
                if let fatal = failures.first(where: \.isConfigurationError) {
                    manager.stop()
                    throw fatal
                }
                return NIOLoopBound(manager, eventLoop: luaLoop)
            }.wait()
        } catch {
            try? group.syncShutdownGracefully()
            throw error
        }
        // After the modules: the services they provide may have settings of their own (NAME_ssl).
        do {
            let messages = try tls.load(
                options: options, services: services.all, baseDirectory: configuration.configDirectory, reloading: false, now: Self.now()
            )
            report(messages)
        } catch {
            let modules = self.modules
            try? luaLoop.submit { modules.value.stop() }.wait()
            try? group.syncShutdownGracefully()
            throw error
        }
    }

    /// Logs what loading the TLS settings found; warnings and errors also go to `problems`.
    private func report(_ messages: [TLSContexts.Message]) {
        for message in messages {
            logger.log(level: message.level, "\(message.description)")
            if message.level >= .warning { problems.add(message.description) }
        }
    }

    private static func now() -> Int {
        #if canImport(Glibc)
        Int(Glibc.time(nil))
        #else
        Int(Darwin.time(nil))
        #endif
    }

    private static func networkSettings(from options: any OptionSource, logger: Logger, problems: ProblemLog) -> NetworkSettings {
        var settingProblems: [NetworkSettings.Problem] = []
        let settings = NetworkSettings(
            from: options.value(NetworkOptions.networkSettings)?.tableValue,
            problems: &settingProblems
        )
        for problem in settingProblems {
            logger.warning("\(problem)")
            problems.add(problem.description)
        }
        return settings
    }

    /// Opens the ports of every service; returns the ports that failed (also logged).
    @discardableResult
    public func start() -> [ListenError] {
        let failures = openPlannedPorts()
        summaryTask.withLockedValue { task in
            task = Self.scheduleSummaries(on: group.next(), limiter: limiter, ports: ports, tls: tls)
        }
        let modules = self.modules
        luaLoop.execute { modules.value.fireEvent("server-started") }
        return failures
    }

    /// Opens every planned port that is not open yet and closes the open ones
    /// no longer planned; established connections are never touched. An open port
    /// whose connections must now live on other loops (a reload mapped a PROXY port
    /// from a Swift service to a Lua one, or back) moves there: its key is unchanged,
    /// but sockets accepting on the wrong loops would leave most of its connections
    /// on a thread that cannot serve them (Lua) or on one loop only (Swift).
    private func openPlannedPorts() -> [ListenError] {
        let plan = ListenPlan(services: services.all, options: options)
        for problem in listenProblems(in: plan) {
            logger.error("\(problem)")
            problems.add(problem)
        }
        let planned = Set(plan.entries.map { ListenKey(service: $0.service, interface: $0.interface, port: $0.port) })
        var openLoops: [ListenKey: Set<ObjectIdentifier>] = [:]
        for listener in ports.openListeners {
            let key = ListenKey(service: listener.serviceName, interface: listener.interface, port: listener.port)
            openLoops[key] = Self.loops(of: listener.childGroup)
        }
        let closing = Set(openLoops.keys).subtracting(planned)
        if !closing.isEmpty {
            _ = try? ports.close(where: { closing.contains(ListenKey(service: $0.serviceName, interface: $0.interface, port: $0.port)) }).wait()
        }
        let context = PipelineContext(
            services: services, settings: liveSettings, logger: logger, tracker: tracker, luaLoop: luaLoop, tls: tls
        )
        var opening: [ListenRequest] = []
        var moving: [ListenRequest] = []
        for entry in plan.entries {
            guard let service = services.service(named: entry.service) else { continue }
            let key = ListenKey(service: entry.service, interface: entry.interface, port: entry.port)
            let executor = service.executor(forPort: entry.port, services: services)
            let childGroup: any EventLoopGroup = executor == .luaLoop ? luaLoop : group
            let current = openLoops[key]
            if let current, current == Self.loops(of: childGroup) { continue }
            if service.usesDirectTLS, tls.settings(forService: service.name) == nil { continue }  // reported by listenProblems
            let request = ListenRequest(
                serviceName: service.name,
                interface: entry.interface,
                port: entry.port,
                childGroup: childGroup,
                settings: settings,
                initializeChild: Self.admitting(
                    through: self.limiter, Self.initializer(for: service.name, port: entry.port, context: context)
                )
            )
            if current == nil {
                opening.append(request)
            } else {
                moving.append(request)
                openLoops[key] = Self.loops(of: childGroup)  // a port listed twice moves once
            }
        }
        let failures = ports.open(opening) + ports.replace(moving)
        for failure in failures { problems.add(failure.description) }
        return failures
    }

    /// What keeps the planned ports from serving, found without binding: port
    /// options that are wrong, and TLS services without a certificate, whether they
    /// listen themselves or a PROXY port hands its connections to them. `start`
    /// logs these as it opens the ports; `nethost check` reports the same list.
    public func listenProblems() -> [String] {
        listenProblems(in: ListenPlan(services: services.all, options: options))
    }

    private func listenProblems(in plan: ListenPlan) -> [String] {
        var result = plan.problems
        var reported: Set<String> = []
        for entry in plan.entries {
            guard let service = services.service(named: entry.service) else { continue }
            if service.usesDirectTLS, tls.settings(forService: service.name) == nil, reported.insert(service.name).inserted {
                result.append(PipelineContext.MissingCertificate(service: service.name).description)
            }
            if case .pipeline(let pipeline) = service.handling,
               let target = pipeline.handOverTarget(forPort: entry.port),
               services.service(named: target)?.usesDirectTLS == true,
               tls.settings(forService: target) == nil,
               reported.insert("\(entry.port) \(target)").inserted {
                result.append("port \(entry.port) hands its connections to service '\(target)', which uses TLS "
                    + "(encryption = \"ssl\") but no certificate is configured: set ssl = { certificate = ..., key = ... }")
            }
        }
        return result
    }

    /// The loops a group's listening sockets accept on: with one thread the Lua
    /// loop is the whole group, and its ports need not move.
    private static func loops(of group: any EventLoopGroup) -> Set<ObjectIdentifier> {
        Set(group.makeIterator().map { ObjectIdentifier($0) })
    }

    private struct ListenKey: Hashable {
        let service: String
        let interface: String
        let port: Int
    }

    /// Why a reload changed nothing.
    public struct ReloadError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Applies a new config without a restart: the options modules read, the
    /// network settings and limits for new connections, modules added to or
    /// removed from `modules_enabled`, each native module's own options
    /// (net_proxy's mappings and trust list), and the ports that follow from
    /// them, and the TLS certificates and settings. Established connections keep
    /// their service and settings. If a module refuses the new options, nothing
    /// changes; a certificate that fails to load leaves the one before in force.
    public func reload(_ newOptions: any OptionSource) throws {
        let previous = options.snapshot
        options.replace(with: newOptions)
        let modules = self.modules
        do {
            try luaLoop.submit { try modules.value.reload() }.wait()
        } catch {
            options.replace(with: previous)
            throw ReloadError(description: "\(error)")
        }
        let settings = Self.networkSettings(from: newOptions, logger: logger, problems: problems)
        liveSettings.value = settings
        limiter.maximum = settings.maxConnections
        // Certificates are read again (a renewed one is served to new connections);
        // one that fails to load leaves the one loaded before in place.
        do {
            report(try tls.load(
                options: options, services: services.all, baseDirectory: configuration.configDirectory, reloading: true, now: Self.now()
            ))
        } catch {
            logger.error("\(error)")  // not thrown when reloading
        }
        let failures = openPlannedPorts()
        logger.info("config reloaded\(failures.isEmpty ? "" : " (\(failures.count) ports failed to open)")")
    }

    /// After a burst of connections (a flood, a reconnect storm) glibc keeps the
    /// freed memory in its arenas; handing it back lets the process shrink to its
    /// working size again. Cheap when there is nothing to return.
    /// Every ten seconds of `loop`'s clock (virtual time on an `EmbeddedEventLoop`):
    /// the summaries of repeated refusals, accept errors and failed handshakes, then
    /// freed memory back to the system.
    static func scheduleSummaries(
        on loop: any EventLoop, limiter: ConnectionLimiter, ports: PortManager, tls: TLSContexts
    ) -> RepeatedTask {
        loop.scheduleRepeatedTask(initialDelay: summaryInterval, delay: summaryInterval) { _ in
            limiter.flushSummaries()
            ports.flushSummaries()
            tls.flushSummaries()
            returnFreedMemory()
        }
    }

    static let summaryInterval = TimeAmount.seconds(10)

    private static func returnFreedMemory() {
        #if canImport(Glibc)
        _ = mallocTrim?(0)
        #endif
    }

    #if canImport(Glibc)
    /// glibc's malloc_trim, which Swift's Glibc module does not import (malloc.h).
    private static let mallocTrim: (@convention(c) (Int) -> Int32)? = {
        guard let symbol = dlsym(nil, "malloc_trim") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int) -> Int32).self)
    }()
    #endif

    /// Closes a connection past `max_connections` before any handler sees it.
    private static func admitting(
        through limiter: ConnectionLimiter,
        _ initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>
    ) -> @Sendable (any Channel) -> EventLoopFuture<Void> {
        { channel in
            guard limiter.admit(channel) else { return channel.eventLoop.makeSucceededVoidFuture() }
            return initializer(channel)
        }
    }

    /// Sets up each accepted connection with the service as the registry holds it
    /// at that moment, so a module reloaded since the port opened serves the new
    /// connections with its new listener.
    private static func initializer(
        for serviceName: String,
        port: Int,
        context: PipelineContext
    ) -> @Sendable (any Channel) -> EventLoopFuture<Void> {
        { channel in
            guard let service = context.services.service(named: serviceName) else {
                channel.close(promise: nil)
                return channel.eventLoop.makeSucceededVoidFuture()
            }
            switch service.handling {
            case .listener(let listener, _):
                return channel.eventLoop.makeCompletedFuture {
                    try context.addServiceStages(
                        to: channel.pipeline.syncOperations, service: service, listener: listener, addresses: nil, origin: nil
                    )
                }
            case .pipeline(let pipeline):
                return pipeline.initialize(channel: channel, port: port, context: context)
            }
        }
    }

    /// Has every module log its counters (SIGUSR1); net_proxy writes one line
    /// per port with its connections by outcome. Does nothing once stopped.
    public func logStatistics() {
        guard !stopped.load(ordering: .acquiring) else { return }
        let modules = self.modules
        luaLoop.execute { modules.value.logStatistics() }
    }

    /// The global modules that loaded, by name.
    public var loadedModules: [String] {
        let modules = self.modules
        return (try? luaLoop.submit { modules.value.loadedModules }.wait()) ?? []
    }

    /// The modules loaded on a host (add_host instances of global modules included), by name.
    public func loadedModules(on host: String) -> [String] {
        let modules = self.modules
        return (try? luaLoop.submit { modules.value.loadedModules(on: host) }.wait()) ?? []
    }

    /// Graceful stop, in Prosody's order: listeners close at once;
    /// `server-stopping` fires; open connections are closed and their listeners
    /// get `ondisconnect`; `server-cleanup` and `server-stopped` fire (modules are
    /// not unloaded, as in Prosody); the Lua state closes; the threads end.
    public func shutdown(drainTime: TimeAmount = .seconds(5)) async {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        summaryTask.withLockedValue { $0?.cancel() }
        try? await ports.close().get()
        let modules = self.modules
        try? await luaLoop.submit { modules.value.fireEvent("server-stopping") }.get()
        if let closing = tracker.closeAll() {
            // Bounded: a connection that does not finish closing in time is left to the group's shutdown.
            let done = luaLoop.makePromise(of: Void.self)
            closing.cascade(to: done)
            luaLoop.scheduleTask(in: drainTime) { done.succeed() }
            _ = try? await done.futureResult.get()
        }
        try? await luaLoop.submit { modules.value.stop() }.get()
        try? await group.shutdownGracefully()
    }

    /// Stops without opening ports having been asked (for `nethost check` and errors at start).
    public func shutdownNow() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        summaryTask.withLockedValue { $0?.cancel() }
        let modules = self.modules
        try? luaLoop.submit { modules.value.stop() }.wait()
        try? group.syncShutdownGracefully()
    }
}

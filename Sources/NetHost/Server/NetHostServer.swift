import Logging
import NetHostConfig
import NetHostCore
import NetHostLua
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The whole host: loads the modules a config enables, opens the ports their
/// services need and drives the connections. Lua runs on one loop of the group
/// (or, for the services in `lua_per_loop_services`, in one Lua state per loop:
/// `NetHostServer+LuaStates`); Swift services use all of them.
///
/// A ServiceLifecycle `Service`: `run` serves until a graceful shutdown is asked
/// for. Its parts have files of their own: where services listen (`ListenPlan`),
/// what a change of plan does to the open ports (`ListenChanges`, applied in
/// `NetHostServer+Ports`), reload, how an accepted connection is set up
/// (`ConnectionSetup`), and the periodic summaries (`Housekeeping`).
public final class NetHostServer: Service, Sendable {
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

    /// Why `run` ended without serving.
    public struct StartFailure: Error, CustomStringConvertible {
        public let description: String
    }

    public let group: MultiThreadedEventLoopGroup
    public let luaLoop: any EventLoop
    public let services: ServiceRegistry
    public let tracker: ConnectionTracker
    public let ports: PortManager
    public let problems: ProblemLog
    /// What `nethost check` mentions without failing: a user's module in place of a built-in one.
    public let notes: ProblemLog
    /// The options in force; `reload` replaces them.
    public let options: LiveOptions
    /// The options NetHost started with: those read at start only keep these values
    /// (`reload` warns when a new config changes one).
    let startOptions: any OptionSource
    let liveSettings: LiveValue<NetworkSettings>
    public var settings: NetworkSettings { liveSettings.value }
    /// The TLS contexts of the services; `reload` reads the certificates again.
    public let tls: TLSContexts
    public let limiter: ConnectionLimiter
    /// The load and the leaving flag, as modules read them (`ModuleContext.status`).
    public let status: HostStatus
    let configuration: Options
    let logger: Logger
    let modules: NIOLoopBound<ModuleManager>
    /// The Lua states of the other event loops, one each, when `lua_per_loop_services`
    /// is set (see `NetHostServer+LuaStates`); none by default.
    let otherLuaStates: [NIOLoopBound<ModuleManager>]
    /// The services those states provide, per loop, for the connections of per-loop services.
    let loopLocal: LoopLocalServices
    /// What every Lua state reaches (`require "nethost.shared"`).
    public let sharedDicts: SharedDicts
    /// `lua_per_loop_services` as the server started with it (a reload keeps it).
    let perLoop: PerLoopLua
    /// The summaries of repeated refusals every ten seconds (`Housekeeping`).
    private let housekeeping = NIOLockedValueBox<RepeatedTask?>(nil)
    /// PROXY-port bypasses already logged (`ListenPlan.bypasses`): said once, not at every reload.
    let warnedBypasses = NIOLockedValueBox<Set<String>>([])
    /// Set by the first shutdown; later calls return at once (the loops are gone).
    private let stopped = Atomic<Bool>(false)
    /// The waits of a graceful stop (the notice, the drain), and `stopNow()` cutting them short.
    let hurry = HurryableWait()
    /// `shutdown_timeout`, read at start and at each reload (so a wrong value is
    /// reported then, not when the server stops).
    let shutdownTimeout: LiveValue<TimeAmount>
    /// Listening sockets to adopt when the ports open (`inherit`).
    let inheritedListeners = NIOLockedValueBox<[InheritedListener]>([])
    /// `leave()`: a graceful stop asked for from inside the process (a takeover).
    private let leaving = AsyncStream<Void>.makeStream()

    /// Loads the modules (on the Lua loop) and the TLS settings; no port is opened yet.
    public init(_ configuration: Options, logger: Logger) async throws {
        let startOptions = configuration.options
        let options = LiveOptions(configuration.options)
        var configuration = configuration
        configuration.options = options
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, configuration.threads))
        let luaLoop = group.next()
        let problems = ProblemLog()
        let notes = ProblemLog()
        let services = ServiceRegistry()
        let shedding = LoadShedding()
        let status = HostStatus()
        let finder = LuaModuleFinder(pluginPaths: configuration.pluginPaths, shippedModules: configuration.shippedModules)
        let loading = configuration
        let modules: NIOLoopBound<ModuleManager>
        let perLoop = Self.perLoopLua(in: options, logger: logger, problems: problems)
        let sharedDicts = SharedDicts(maximumBytes: PerLoopLua.sharedDictBytes(in: options))
        let otherLoops = perLoop.isEnabled ? Array(group.makeIterator()).filter { $0 !== luaLoop } : []
        let loopLocal = LoopLocalServices(loops: otherLoops)
        let stateCount = 1 + otherLoops.count
        do {
            modules = try await luaLoop.submit {
                let manager = try ModuleManager(
                    group: group, luaLoop: luaLoop, options: loading.options, services: services,
                    natives: loading.nativeModules, finder: finder,
                    configDirectory: loading.configDirectory, logger: logger, problems: problems, notes: notes, shedding: shedding,
                    status: status,
                    luaStates: LuaStatePlacement(index: 1, count: stateCount, perLoop: perLoop, sharedDicts: sharedDicts)
                )
                let failures = manager.loadEnabledModules()
                if let fatal = failures.first(where: \.isConfigurationError) {
                    manager.stop()
                    throw fatal
                }
                return NIOLoopBound(manager, eventLoop: luaLoop)
            }.get()
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        let otherLuaStates: [NIOLoopBound<ModuleManager>]
        do {
            otherLuaStates = try await Self.loadOtherLuaStates(
                on: otherLoops, placement: LuaStatePlacement(count: stateCount, perLoop: perLoop, sharedDicts: sharedDicts),
                loopLocal: loopLocal, group: group, configuration: loading, finder: finder, logger: logger,
                problems: problems, shedding: shedding, status: status
            )
        } catch {
            try? await luaLoop.submit { modules.value.stop() }.get()
            try? await group.shutdownGracefully()
            throw error
        }
        Self.report(perLoop, states: stateCount, services: services, logger: logger, problems: problems)
        self.options = options
        self.startOptions = startOptions
        self.configuration = configuration
        self.logger = logger
        self.group = group
        self.luaLoop = luaLoop
        self.problems = problems
        self.notes = notes
        self.services = services
        self.modules = modules
        self.otherLuaStates = otherLuaStates
        self.loopLocal = loopLocal
        self.sharedDicts = sharedDicts
        self.perLoop = perLoop
        let ports = PortManager(group: group, logger: logger)
        self.ports = ports
        for state in [modules] + otherLuaStates {
            try? await state.eventLoop.submit {
                state.value.runtime.listeningAddresses = { [ports] name in ports.boundAddresses(of: name) }
            }.get()
        }
        let settings = Self.networkSettings(from: options, logger: logger, problems: problems)
        self.liveSettings = LiveValue(settings)
        self.shutdownTimeout = LiveValue(Self.shutdownTimeout(from: options, logger: logger, problems: problems))
        let tracker = ConnectionTracker()
        self.tracker = tracker
        self.limiter = ConnectionLimiter(
            maximum: settings.maxConnections, maximumPerAddress: settings.maxConnectionsPerIP, shedding: shedding,
            idleConnections: tracker, shedIdleAfter: settings.shedIdleAfterAmount, logger: logger
        )
        status.attach(self.limiter)
        self.status = status
        self.tls = TLSContexts(logger: logger)
        // After the modules: the services they provide may have settings of their own (NAME_ssl).
        do {
            report(try tls.load(
                options: options, services: services.all, baseDirectory: configuration.configDirectory,
                reloading: false, now: Self.now()
            ))
        } catch {
            await unload()
            throw error
        }
    }

    /// Logs what loading the TLS settings found; warnings and errors also go to `problems`.
    func report(_ messages: [TLSContexts.Message]) {
        for message in messages {
            logger.log(level: message.level, "\(message.description)")
            if message.level >= .warning { problems.add(message.description) }
        }
    }

    static func now() -> Int {
        #if canImport(Glibc)
        Int(Glibc.time(nil))
        #else
        Int(Darwin.time(nil))
        #endif
    }

    static func networkSettings(from options: any OptionSource, logger: Logger, problems: ProblemLog) -> NetworkSettings {
        var settingProblems: [NetworkSettings.Problem] = []
        let settings = NetworkSettings(
            from: options.value(NetworkOptions.networkSettings)?.tableValue,
            problems: &settingProblems
        )
        for problem in settingProblems {
            logger.warning("\(problem)")
            problems.add(problem.description)
        }
        let limit = DescriptorLimit.current
        let inUse = DescriptorLimit.inUse
        let (fitted, lowered) = settings.fittingConnections(toDescriptors: limit, inUse: inUse)
        if let lowered, let limit {
            let reserve = DescriptorLimit.reserve(for: limit)
            let message = "max_connections \(lowered) is more than \(limit) open files allow: using \(fitted.maxConnections) "
                + "(\(inUse) open already, \(reserve) kept for listening sockets, logs and modules; "
                + "raise LimitNOFILE or ulimit -n for more)"
            // The default lowered is expected on a small machine; a configured value lowered is a mistake.
            logger.log(level: lowered == NetworkSettings().maxConnections ? .info : .warning, "\(message)")
        }
        return fitted
    }

    /// As a `Service`: opens the ports, serves until a graceful shutdown is asked
    /// for (SIGTERM or SIGINT in a `ServiceGroup`) or the task is cancelled, then
    /// stops as `shutdown` does. Throws `StartFailure`, after stopping, when no
    /// port could be opened: a server that listens nowhere serves nobody.
    public func run() async throws {
        try await run(whenServing: {}, whenStopping: {})
    }

    /// `run()`, telling a supervisor: `whenServing` runs once the ports are open
    /// (systemd counts the server started then), `whenStopping` once a graceful
    /// shutdown begins.
    public func run(whenServing: @Sendable () async -> Void, whenStopping: @Sendable () -> Void) async throws {
        let failures = await start()
        if !failures.isEmpty, ports.openListeners.isEmpty {
            await shutdown()
            throw StartFailure(description: "no port could be opened (\(failures.count) failed), so NetHost does not run")
        }
        let loaded = await loadedModules
        logger.info("started; modules loaded: \(loaded.joined(separator: ", "))")
        for host in options.definedHosts {
            let names = await loadedModules(on: host.name)
            if !names.isEmpty { logger.info("modules loaded on \(host.name): \(names.joined(separator: ", "))") }
        }
        await whenServing()
        // Until the service group asks for a graceful stop (a signal) or `leave()` does.
        await withTaskGroup(of: Void.self) { waiting in
            waiting.addTask { try? await gracefulShutdown() }
            waiting.addTask { [leaving] in
                for await _ in leaving.stream { return }
            }
            await waiting.next()
            waiting.cancelAll()
        }
        whenStopping()
        await announceLeaving()
        logger.info("stopping: closing listeners, then open connections")
        await shutdown()
    }

    /// Listening sockets this process did not bind (handed over by the NetHost it
    /// takes over from, or passed by systemd), to adopt for the planned ports at
    /// their addresses when the ports open, instead of binding; those that match no
    /// planned port are closed then (`ListenerInheritance`). Call before `run`.
    public func inherit(_ listeners: [InheritedListener]) {
        inheritedListeners.withLockedValue { $0 += listeners }
    }

    /// Stops as at a graceful shutdown (the listeners close, open connections
    /// drain), asked for from inside the process: another NetHost has taken over
    /// the listening sockets. `run` returns when the drain is over.
    public func leave() {
        leaving.continuation.yield()
    }

    /// Opens the ports of every service; returns the ports that failed (also logged).
    @discardableResult
    public func start() async -> [ListenError] {
        warnAboutExpiringCertificates()
        let failures = await openPlannedPorts()
        housekeeping.withLockedValue { task in
            task = Housekeeping.schedule(on: group.next(), limiter: limiter, ports: ports, tls: tls)
        }
        executeOnEveryLuaState { $0.fireEvent("server-started") }
        return failures
    }

    /// The host's own counters since the start (TLS handshakes timed out or refused,
    /// connections shed at `max_send_buffer_total` or for being idle at `max_connections`,
    /// log lines dropped), read now; the
    /// place a metrics exporter reads them.
    public var counters: ServerCounters {
        ServerCounters(handshakeLimits: tls.handshakeLimits, sendBuffers: settings.sendBufferBudget, log: .shared, limiter: limiter)
    }

    /// Logs the host's own counters (`counters`), then has every module log its
    /// (SIGUSR1); net_proxy writes one line per port with its connections by
    /// outcome. Does nothing once stopped.
    public func logStatistics() {
        guard !stopped.load(ordering: .acquiring) else { return }
        var metadata: Logger.Metadata = [:]
        for (key, count) in counters.summary {
            metadata[key] = "\(count)"
        }
        logger.info("NetHost counters since start", metadata: metadata)
        let modules = self.modules
        luaLoop.execute { modules.value.logStatistics() }
    }

    /// The global modules that loaded, by name.
    public var loadedModules: [String] {
        get async {
            let modules = self.modules
            return (try? await luaLoop.submit { modules.value.loadedModules }.get()) ?? []
        }
    }

    /// The modules loaded on a host (add_host instances of global modules included), by name.
    public func loadedModules(on host: String) async -> [String] {
        let modules = self.modules
        return (try? await luaLoop.submit { modules.value.loadedModules(on: host) }.get()) ?? []
    }

    /// Graceful stop, in Prosody's order: listeners close at once;
    /// `server-stopping` fires; open connections are closed and their listeners
    /// get `ondisconnect`; `server-cleanup` and `server-stopped` fire (modules are
    /// not unloaded, as in Prosody); the Lua state closes; the threads end.
    public func shutdown(drainTime: TimeAmount = .seconds(5)) async {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        housekeeping.withLockedValue { $0?.cancel() }
        try? await ports.close().get()
        await onEveryLuaState { $0.fireEvent("server-stopping") }
        await drain()
        if let closing = tracker.closeAll() {
            // Bounded: a connection that does not finish closing in time is left to the group's shutdown.
            let done = luaLoop.makePromise(of: Void.self)
            closing.cascade(to: done)
            luaLoop.scheduleTask(in: drainTime) { done.succeed() }
            _ = try? await done.futureResult.get()
        }
        await onEveryLuaState { $0.stop() }
        try? await group.shutdownGracefully()
    }

    /// The graceful part of a stop: every open connection is told
    /// (`onstatus(conn, "shutdown")`: a service can say goodbye and close) and gets
    /// `shutdown_timeout` to end by itself. Ends early when the last one has, when
    /// `stopNow()` is called (a second SIGTERM), or when the task is cancelled.
    private func drain() async {
        let timeout = shutdownTimeout.value
        let open = await tracker.count()
        guard open > 0, timeout > .zero, !hurry.isHurried else { return }
        logger.info("draining: \(open) open connection(s) get up to \(Double(timeout.nanoseconds) / 1e9) s to end (shutdown_timeout)")
        await tracker.announce(status: "shutdown")
        let clock = group.next()
        let deadline = clock.now + timeout
        while true {
            let allClosed = clock.makePromise(of: Void.self)
            tracker.succeedWhenAllClosed(allClosed)
            let end = await hurry.wait(upTo: deadline - clock.now, on: clock, until: allClosed.futureResult)
            allClosed.succeed()
            // Done means every loop was empty once; a module may have opened a connection since.
            guard end == .done else { break }
            if await tracker.count() == 0 { return }
        }
        let left = await tracker.count()
        if left > 0 { logger.info("drain over: closing the \(left) connection(s) still open") }
    }

    static func shutdownTimeout(from options: any OptionSource, logger: Logger, problems: ProblemLog) -> TimeAmount {
        var found: [String] = []
        let timeout = ShutdownOptions.timeout(in: options, problems: &found)
        for problem in found {
            logger.warning("\(problem)")
            problems.add(problem)
        }
        return timeout
    }

    /// Ends a drain at once (a second SIGTERM): what is still open is closed now.
    public func stopNow() {
        hurry.hurry()
    }

    /// Stops a server whose ports were never opened (`nethost check`, a failed
    /// start): the modules stop and the threads end, without the shutdown events.
    public func unload() async {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        housekeeping.withLockedValue { $0?.cancel() }
        await onEveryLuaState { $0.stop() }
        try? await group.shutdownGracefully()
    }

    /// `unload`, blocking, for where no `await` is possible (a `deinit`): never
    /// from async code, which must not block its thread.
    @available(*, noasync, message: "blocks its thread; use unload() or shutdown()")
    public func unloadNow() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        housekeeping.withLockedValue { $0?.cancel() }
        for state in [modules] + otherLuaStates {
            try? state.eventLoop.submit { state.value.stop() }.wait()
        }
        try? group.syncShutdownGracefully()
    }
}

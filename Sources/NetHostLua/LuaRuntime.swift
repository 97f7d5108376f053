import CoreMetrics
import Logging
import LuaBridge
import NetHostConfig
import NetHostCore
import NIOCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The Lua state that runs every Lua module, and the host primitives the
/// module API is built on. Lives on one event loop (`loop`) and is only
/// touched there: the module manager, Lua listeners and timers all run on it.
public final class LuaRuntime: ConnectionFinishObserver {
    package let state: LuaState
    package let loop: any EventLoop
    let options: any OptionSource
    let services: ServiceRegistry
    let logger: Logger
    let configDirectory: String
    private var loader: LuaReference = .none
    var timers: [Int: LuaTimer] = [:]
    var nextTimerID = 1
    /// Set by `close()`: the Lua state is gone, and every entry point returns at once.
    package private(set) var isClosed = false
    /// `isClosed` for listeners, which do not own the runtime, and for other
    /// threads (a listener released off the Lua loop); also set once the runtime
    /// is going away.
    let lifetime = LuaRuntimeLifetime()
    /// The data of the `onincoming` callback running now, if any (see `IncomingBytes`).
    var incoming: IncomingBytes?
    /// How `net.server.addclient` reaches the network; tests substitute their own.
    package var outgoingTransport: any OutgoingTransport = PosixOutgoingTransport()
    /// The settings an outgoing connection gets: `network_settings` as the config says now.
    package var outgoingSettings: () -> NetworkSettings
    /// The addresses a service listens on now (`core.portmanager.get_active_services`);
    /// the server sets it once its port manager exists.
    package var listeningAddresses: (String) -> [SocketAddress] = { _ in [] }

    /// How many VM instructions one callback, timer or module load may run
    /// (`lua_instruction_budget`); 0 means no limit.
    package var instructionBudget: Int32 = LuaRuntime.defaultInstructionBudget
    package static let defaultInstructionBudget: Int32 = 50_000_000
    private var budgetDepth = 0

    /// Runs `body` (a protected call into Lua) under the instruction budget and
    /// the memory limit. Nested calls (a callback that triggers another) share
    /// the outer call's budget.
    func withinBudget<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        guard budgetDepth == 0 else { return try body() }
        budgetDepth = 1
        state.stack.setInstructionBudget(instructionBudget)
        defer {
            state.stack.setInstructionBudget(0)
            budgetDepth = 0
        }
        return try state.enforcingMemoryLimit(body)
    }

    /// Whether an error is the budget running out, rather than the code's own error.
    package static func isBudgetExceeded(_ error: LuaError) -> Bool {
        error.message.contains("instruction budget exceeded")
    }

    /// Finds or loads the module `name` that `dependent` asks for with
    /// `module:depends`, and returns where it is: a Lua module's key, or nil for a
    /// native module (which has no environment). Set by the module manager.
    package var loadDependency: ((_ name: String, _ dependent: ModuleKey) throws -> ModuleKey?)?

    /// What a host is, for `module:get_host_type()`; set by the module manager.
    package var hostType: (_ host: String) -> String = { _ in "local" }

    /// The wall-clock time in seconds since 1970, which a timer's callback is
    /// given as `now` (as Prosody's timers give it). Tests substitute their own.
    var wallClock: () -> Double = LuaRuntime.systemWallClock
    /// The modules' metrics (`module:metric`, `module:measure`).
    let metrics: LuaMetrics
    /// Callbacks that raised an error or ran out of budget, per module (metrics).
    let callbackFailures: LuaCallbackFailures
    /// Which services run in one state per event loop (`lua_per_loop_services`).
    package let perLoop: PerLoopLua
    /// The store every Lua state of the server reaches (`require "nethost.shared"`).
    package let sharedDicts: SharedDicts
    /// This state's number among the server's Lua states: 1 is the primary one (Prosody's
    /// one state, which runs every service and the native modules' Lua side), 2 and
    /// up the other event loops' states when `lua_per_loop_services` is set.
    package let stateIndex: Int
    /// How many Lua states the server runs.
    package let stateCount: Int
    /// When the runtime started, as the wall clock tells it (`prosody.start_time`).
    private let startTime = LuaRuntime.systemWallClock()

    static func systemWallClock() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }

    /// `connectionMethods`: what native modules add to Lua's `conn` (the built-in ones win).
    package init(
        loop: any EventLoop, options: any OptionSource, services: ServiceRegistry, logger: Logger, configDirectory: String,
        connectionMethods: [String: LuaFunction] = [:],
        metricsFactory: any MetricsFactory = MetricsSystem.factory,
        perLoop: PerLoopLua = .none,
        sharedDicts: SharedDicts = SharedDicts(),
        stateIndex: Int = 1,
        stateCount: Int = 1
    ) throws {
        self.perLoop = perLoop
        self.sharedDicts = sharedDicts
        self.stateIndex = stateIndex
        self.stateCount = stateCount
        self.metrics = LuaMetrics(factory: metricsFactory)
        self.callbackFailures = LuaCallbackFailures(factory: metricsFactory)
        self.state = try LuaState(libraries: .all)
        // Services make short-lived strings and tables per event (each `data` received,
        // each reply built); the generational collector frees them in cheap minor
        // collections instead of re-marking every module's tables in full cycles.
        state.useGenerationalCollector()
        self.loop = loop
        self.options = options
        self.services = services
        self.logger = logger
        self.configDirectory = configDirectory
        self.outgoingSettings = { [options] in Self.currentNetworkSettings(options) }
        ConnectionLuaAPI.register(on: state.stack, runtime: self, adding: connectionMethods)
        try installModuleAPI()
    }

    deinit {
        // First: the Lua state, closing below, releases the connections it still
        // holds, and their listeners must not reach back into this runtime.
        lifetime.markClosed()
        for timer in timers.values { timer.task?.cancel() }
        // Not closed first (a test, or a start-up that failed): the state closes
        // after this object is gone, and a finalizer that calls a host function
        // must get an error rather than reach it.
        if !state.isClosed { state.stopHostFunctions() }
    }

    /// Closes the Lua state at shutdown, after the modules were unloaded. The
    /// modules' finalizers run now, while their calls into the host still work;
    /// afterwards listeners, timers and connections that outlive the state find it
    /// closed and do nothing.
    package func close() {
        guard !isClosed else { return }
        isClosed = true
        lifetime.markClosed()
        for timer in timers.values { timer.task?.cancel() }
        timers.removeAll()
        state.close()
    }

    /// The state's memory after a full garbage collection: what is really kept.
    func memoryAfterFullCollection() -> Int {
        guard !isClosed else { return 0 }
        state.collectGarbage()
        return state.memoryInUse
    }

    /// Gives back a registry slot (a listener table, a callback) once nothing uses it.
    func release(_ reference: LuaReference) {
        guard !isClosed else { return }
        state.stack.release(reference)
    }

    // MARK: Loading modules

    /// Runs a module file on `host` in its own environment with its own `module`
    /// object; returns the host it ended up on ("*" if it called `set_global`).
    /// If it fails, nothing it registered stays.
    package func loadModule(name: String, host: String, path: String) throws(LuaError) -> String {
        do {
            return try callLoader("load", .string(name), .string(host), .string(path)) { stack in
                stack.toString(at: -1) ?? host
            }
        } catch {
            discardFailedModule(name: name, host: host)
            throw error
        }
    }

    /// Gives the global module `name` to its `add_host` for `host`, as Prosody
    /// does for a global module loaded on a host. False if it has no `add_host`.
    /// If `add_host` fails, nothing it registered for the host stays.
    package func addHost(name: String, host: String) throws(LuaError) -> Bool {
        do {
            return try callLoader("add_host", .string(name), .string(host)) { $0.toBoolean(at: -1) }
        } catch {
            discardFailedModule(name: name, host: host)
            throw error
        }
    }

    /// The first step of a reload: the new file compiles and the old module's
    /// `save` succeeds, or this throws and the module runs on unchanged.
    package func prepareReload(name: String, host: String) throws(LuaError) {
        try callLoader("prepare_reload", .string(name), .string(host)) { _ in () }
    }

    /// The second step: unload the old module, load the new one with the saved
    /// state, `restore` it. Returns the host the new module is on. If the new code
    /// fails, nothing of either version stays.
    package func finishReload(name: String, host: String) throws(LuaError) -> String {
        do {
            return try callLoader("finish_reload", .string(name), .string(host)) { stack in
                stack.toString(at: -1) ?? host
            }
        } catch {
            discardFailedModule(name: name, host: host)
            throw error
        }
    }

    /// Forgets a module that loaded but must not stay (its add_host failed), without calling its `unload`.
    package func discardModule(name: String, host: String) {
        discardFailedModule(name: name, host: host)
    }

    /// Removes the hooks, timers and services of a module whose load (or unload) failed, and
    /// forgets it so that the next load runs its file afresh. The failure may have
    /// been the module spending its whole instruction budget or memory, so this
    /// runs with a budget of its own and without the memory limit; the services go
    /// on the Swift side as well, in case even that fails.
    private func discardFailedModule(name: String, host: String) {
        defer { services.removeServices(of: name, host: host) }
        guard !isClosed else { return }
        let stack = state.stack
        let base = stack.top
        defer { stack.setTop(base) }
        do throws(LuaError) {
            let count = try pushLoaderCall("unload", [.string(name), .string(host), .boolean(true)])
            try stack.withOwnInstructionBudget(instructionBudget) { () throws(LuaError) in
                try state.ignoringMemoryLimit { () throws(LuaError) in
                    try stack.call(arguments: count, results: 0)
                }
            }
        } catch {
            logger.error("could not clean up after module '\(name)' failed: \(error.fullDescription)")
        }
    }

    /// Calls the module's `unload` and removes everything it registered.
    package func unloadModule(name: String, host: String) {
        do {
            try callLoader("unload", .string(name), .string(host)) { _ in () }
        } catch {
            logger.error("unloading module '\(name)' failed: \(error.fullDescription)")
            discardFailedModule(name: name, host: host)
        }
        services.removeServices(of: name, host: host)
    }

    /// Fires module-loaded, module-unloaded or module-reloaded on a host's events;
    /// an error in a handler is logged.
    package func fireLifecycle(_ event: String, name: String, host: String) {
        do {
            try callLoader("fire_lifecycle", .string(event), .string(name), .string(host)) { _ in () }
        } catch {
            logger.error("error in a handler of event '\(event)' for module '\(name)': \(error.fullDescription)")
        }
    }

    /// Fires a module event from Swift (e.g. "server-started") on a host's
    /// events ("*": the global ones), with an empty data table.
    package func fireEvent(_ name: String, host: String = "*") {
        do {
            try callLoader("fire_event", .string(name), .table(ConfigTable()), .string(host)) { _ in () }
        } catch {
            logger.error("error in a handler of event '\(name)': \(error.fullDescription)")
        }
    }

    /// Calls `loader[function](arguments...)` from the module API prelude and
    /// reads its one result with `result`, leaving the stack as it was.
    @discardableResult
    private func callLoader<T>(
        _ function: String, _ arguments: ConfigValue..., result: (LuaStack) -> T
    ) throws(LuaError) -> T {
        guard !isClosed else { throw LuaError(kind: .runtime, message: "the Lua runtime has stopped") }
        let stack = state.stack
        let base = stack.top
        defer { stack.setTop(base) }
        let count = try pushLoaderCall(function, arguments)
        try withinBudget { () throws(LuaError) in
            try stack.call(arguments: count, results: 1)
        }
        return result(stack)
    }

    /// Pushes `loader[function]` and its arguments; returns how many arguments. [-0, +1+n]
    private func pushLoaderCall(_ function: String, _ arguments: [ConfigValue]) throws(LuaError) -> Int32 {
        let stack = state.stack
        stack.push(loader)
        stack.rawGetField(function, from: -1)
        stack.remove(at: -2)
        for argument in arguments {
            do { try stack.push(argument) } catch { throw LuaError(kind: .runtime, message: "loader.\(function): \(error)") }
        }
        return Int32(arguments.count)
    }

    /// Pushes the one userdata that stands for `connection` in Lua. [-0, +1]
    func push(_ connection: Connection) {
        guard !isClosed else { return }
        let stack = state.stack
        if connection.listenerSlot != 0 {
            stack.push(LuaReference(rawValue: connection.listenerSlot))
            return
        }
        stack.pushUserdata(connection)
        let reference = stack.makeReference(to: -1)
        if !reference.isNone {
            connection.listenerSlot = reference.rawValue
            connection.finishObserver = self
        }
    }

    package func connectionFinished(_ connection: Connection) {
        guard connection.listenerSlot != 0 else { return }
        release(LuaReference(rawValue: connection.listenerSlot))
        connection.listenerSlot = 0
    }

    /// A listener for the table at `index`. It keeps the table in the registry
    /// for as long as a service or a connection uses it, and no longer: a module
    /// that is reloaded, or that calls `conn:setlistener` with a new table each
    /// time, leaves nothing behind. [-0, +0]
    func listener(forTableAt index: Int32, module: String) -> LuaListener {
        let stack = state.stack
        stack.rawGetField("ondrain", from: index)
        let wantsDrain = stack.type(at: -1) == .function
        stack.pop()
        return LuaListener(runtime: self, table: stack.makeReference(to: index), wantsDrain: wantsDrain, module: module)
    }

    // MARK: The host primitives behind the module API

    private func installModuleAPI() throws(LuaError) {
        let stack = state.stack
        let base = stack.top
        defer { stack.setTop(base) }
        stack.newTable()
        let primitivesIndex = stack.top
        stack.newTable()
        let sharedIndex = stack.top
        let primitives: [String: LuaFunction] = [
            "log": { [unowned self] stack in try log(stack) },
            "get_option": { [unowned self] stack in try getOption(stack, exact: false) },
            "get_option_exact": { [unowned self] stack in try getOption(stack, exact: true) },
            "config_directory": { [unowned self] stack in
                stack.push(configDirectory)
                return 1
            },
            "provide_net": { [unowned self] stack in try provideNet(stack) },
            "remove_service": { [unowned self] stack in
                let service = try stack.checkString(1, function: "remove_service")
                let module = try stack.checkString(2, function: "remove_service")
                let host = try stack.checkString(3, function: "remove_service")
                services.removeService(named: service, module: module, host: host)
                return 0
            },
            "host_type": { [unowned self] stack in
                stack.push(hostType(try stack.checkString(1, function: "host_type")))
                return 1
            },
            "depends": { [unowned self] stack in try depends(stack) },
            "prosody_library": { [unowned self] stack in
                if let path = ProsodyLibrary.installed(in: options, relativeTo: configDirectory) { stack.push(path) } else { stack.pushNil() }
                return 1
            },
            "prosody_library_missing_prefix": { stack in
                stack.push(ProsodyLibrary.missingMessagePrefix)
                return 1
            },
            "prosody_library_wanted": { [unowned self] stack in
                stack.push(ProsodyLibrary.wanted(in: options, relativeTo: configDirectory))
                return 1
            },
            "defined_hosts": { [unowned self] stack in
                let hosts = options.definedHosts.filter(\.isEnabled)
                stack.newTable()
                for (index, host) in hosts.enumerated() {
                    stack.newTable()
                    stack.push(host.name)
                    stack.rawSetField("name", in: -2)
                    stack.push(host.isComponent ? "component" : "local")
                    stack.rawSetField("type", in: -2)
                    stack.rawSetIndex(index + 1, in: -2)
                }
                return 1
            },
            "version": { stack in
                stack.push("\(NetHostVersion.prosodyModuleAPI) (NetHost \(NetHostVersion.current))")
                return 1
            },
            "start_time": { [unowned self] stack in
                stack.push(startTime)
                return 1
            },
            "metric_handle": { [unowned self] stack in try metricHandle(stack) },
            "metric_update": { [unowned self] stack in
                let id = try stack.checkInteger(1, function: "metric_update")
                let operation = try stack.checkString(2, function: "metric_update")
                // Prosody's metrics take any number; anything else is not counted.
                if let value = stack.toNumber(at: 3) { metrics.update(id, operation: operation, value: value) }
                return 0
            },
            "wall_clock": { [unowned self] stack in
                stack.push(wallClock())
                return 1
            },
            "monotonic": { [unowned self] stack in
                stack.push(Double(loop.now.uptimeNanoseconds) / 1e9)
                return 1
            },
            "add_timer": { [unowned self] stack in try addTimer(stack) },
            "addclient": { [unowned self] stack in try addClient(stack) },
            "listening_addresses": { [unowned self] stack in
                let name = try stack.checkString(1, function: "listening_addresses")
                let addresses = listeningAddresses(name).compactMap { address in address.ipText.map { ($0, address.port ?? 0) } }
                stack.newTable(arrayCapacity: Int32(clamping: addresses.count))
                for (index, (ip, port)) in addresses.enumerated() {
                    stack.newTable(arrayCapacity: 2)
                    stack.push(ip)
                    stack.rawSetIndex(1, in: -2)
                    stack.push(port)
                    stack.rawSetIndex(2, in: -2)
                    stack.rawSetIndex(index + 1, in: -2)
                }
                return 1
            },
            "link": { stack in
                let from = try ConnectionLuaAPI.connectedConnection(stack, at: 1, function: "link")
                let to = try ConnectionLuaAPI.connectedConnection(stack, at: 2, function: "link")
                do {
                    try from.link(to: to)
                } catch {
                    throw LuaArgumentError(argument: 2, function: "link", "\(error)")
                }
                return 0
            },
            "stop_timer": { [unowned self] stack in
                stopTimer(try stack.checkInteger(1, function: "stop_timer"))
                return 0
            },
            "reschedule_timer": { [unowned self] stack in
                let id = try stack.checkInteger(1, function: "reschedule")
                let delay = try Self.timerDelay(try stack.checkNumber(2, function: "reschedule"))
                reschedule(timer: id, after: delay)
                return 0
            },
        ]
        let shared = SharedDictLuaAPI.primitives(store: sharedDicts, stateIndex: stateIndex, stateCount: stateCount)
        for (name, function) in primitives.merging(shared, uniquingKeysWith: { first, _ in first }) {
            stack.setFunction(name, in: primitivesIndex, function)
        }
        for (index, chunk) in ModuleAPIChunks.all.enumerated() {
            try stack.load(chunk.source, chunkName: chunk.name)
            stack.pushCopy(of: primitivesIndex)
            stack.pushCopy(of: sharedIndex)
            let isLast = index == ModuleAPIChunks.all.count - 1
            try stack.call(arguments: 2, results: isLast ? 1 : 0)
        }
        loader = stack.makeReference()
    }

    /// `host.metric_handle(type, name, label_keys, label_values)`: the id of a module's metric.
    private func metricHandle(_ stack: LuaStack) throws -> Int32 {
        let typeName = try stack.checkString(1, function: "metric")
        guard let kind = LuaMetrics.Kind(rawValue: typeName) else {
            throw LuaArgumentError("unknown metric type \(typeName)")
        }
        let name = try stack.checkString(2, function: "metric")
        try stack.checkType(3, .table, function: "metric")
        try stack.checkType(4, .table, function: "metric")
        var labels: [(String, String)] = []
        for index in 0..<min(stack.rawLength(at: 3), 64) {
            stack.rawGetIndex(index + 1, from: 3)
            stack.rawGetIndex(index + 1, from: 4)
            labels.append((stack.toString(at: -2) ?? "", stack.toString(at: -1) ?? ""))
            stack.pop(2)
        }
        stack.push(metrics.handle(kind: kind, name: name, labels: labels))
        return 1
    }

    private func log(_ stack: LuaStack) throws -> Int32 {
        let module = try stack.checkString(1, function: "log")
        let host = try stack.checkString(2, function: "log")
        let level = try stack.checkString(3, function: "log")
        let message = try stack.checkString(4, function: "log")
        var metadata: Logger.Metadata = ["module": "\(module)"]
        if host != "*" { metadata["host"] = "\(host)" }
        logger.log(level: Self.logLevel(level), "\(message)", metadata: metadata)
        return 0
    }

    static func logLevel(_ prosodyLevel: String) -> Logger.Level {
        switch prosodyLevel {
        case "debug": return .debug
        case "warn": return .warning
        case "error": return .error
        default: return .info
        }
    }

    private func getOption(_ stack: LuaStack, exact: Bool) throws -> Int32 {
        let host = try stack.checkString(1, function: "get_option")
        let name = try stack.checkString(2, function: "get_option")
        let hostName = host == "*" ? nil : host
        // exact: the host's own value, not one it inherits from the global section.
        let found = if exact, let hostName { options.hostValue(name, host: hostName) } else { options.value(name, host: hostName) }
        guard let value = found else {
            stack.pushNil()
            return 1
        }
        do { try stack.push(value) } catch { throw LuaArgumentError("config option '\(name)': \(error)") }
        return 1
    }

    private func provideNet(_ stack: LuaStack) throws -> Int32 {
        let module = try stack.checkString(1, function: "provides")
        let host = try stack.checkString(2, function: "provides")
        try stack.checkType(3, .table, function: "provides")
        guard stack.rawGetField("name", from: 3) == .string, let name = stack.toString(at: -1) else {
            throw LuaArgumentError("module:provides('net', ...) needs a service name")
        }
        stack.pop()
        guard stack.rawGetField("listener", from: 3) == .table else {
            throw LuaArgumentError("net service '\(name)' has no listener table")
        }
        let listener = self.listener(forTableAt: -1, module: module)
        stack.pop()
        // A per-loop service is accepted on every loop, each served by its own loop's state.
        let executor: NetService.Executor = perLoop.contains(name) ? .luaPerLoop : .luaLoop
        var service = NetService(name: name, handling: .listener(listener, executor), module: module, host: host)
        service.defaultPorts = try Self.ports(in: stack, table: 3, service: name)
        if stack.rawGetField("default_interface", from: 3) == .string, let interface = stack.toString(at: -1) {
            service.defaultInterfaces = [interface]
        }
        stack.pop()
        if stack.rawGetField("encryption", from: 3) == .string {
            service.encryption = NetService.Encryption(prosodyValue: stack.toString(at: -1))
        }
        stack.pop()
        stack.rawGetField("private", from: 3)
        service.isPrivate = stack.toBoolean(at: -1)
        stack.pop()
        try services.add(service)
        logger.debug("service '\(name)' provided", metadata: host == "*" ? ["module": "\(module)"] : ["module": "\(module)", "host": "\(host)"])
        return 0
    }

    private static func ports(in stack: LuaStack, table: Int32, service: String) throws -> [Int] {
        defer { stack.pop() }
        switch stack.rawGetField("default_ports", from: table) {
        case .table:
            var ports: [Int] = []
            var index = 1
            while stack.rawGetIndex(index, from: -1) != .nil {
                guard let port = stack.toInteger(at: -1), (0 ... 65535).contains(port) else {
                    throw LuaArgumentError("net service '\(service)': default_ports[\(index)] is not a port number")
                }
                ports.append(port)
                stack.pop()
                index += 1
            }
            stack.pop()
            return ports
        case .nil:
            stack.pop()
            stack.rawGetField("default_port", from: table)
            guard !stack.isNil(at: -1) else { return [] }
            guard let port = stack.toInteger(at: -1), (0 ... 65535).contains(port) else {
                throw LuaArgumentError("net service '\(service)': default_port is not a port number")
            }
            return [port]
        default:
            throw LuaArgumentError("net service '\(service)': default_ports must be a list of ports")
        }
    }

    /// `module:depends(name)`: the dependency's environment (`true` for a native module).
    private func depends(_ stack: LuaStack) throws -> Int32 {
        let dependent = try stack.checkString(1, function: "depends")
        let host = try stack.checkString(2, function: "depends")
        let name = try stack.checkString(3, function: "depends")
        guard let loadDependency else { throw LuaArgumentError("module:depends is not available here") }
        guard let key = try loadDependency(name, ModuleKey(dependent, host: host)) else {
            stack.push(true)
            return 1
        }
        stack.push(loader)
        stack.rawGetField("environment", from: -1)
        stack.remove(at: -2)
        stack.push(key.name)
        stack.push(key.host)
        try stack.call(arguments: 2, results: 1)
        return 1
    }
}

/// Whether the runtime has closed its Lua state or is going away, readable
/// from any thread: what lets a listener hold the runtime without owning it.
final class LuaRuntimeLifetime: Sendable {
    private let closed = Atomic<Bool>(false)
    package var isClosed: Bool { closed.load(ordering: .acquiring) }
    func markClosed() { closed.store(true, ordering: .releasing) }
}

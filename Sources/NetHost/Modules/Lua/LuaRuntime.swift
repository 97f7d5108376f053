import Logging
import NIOCore
import Synchronization

/// The Lua state that runs every Lua module, and the host primitives the
/// module API is built on. Lives on one event loop (`loop`) and is only
/// touched there: the module manager, Lua listeners and timers all run on it.
public final class LuaRuntime: ConnectionFinishObserver {
    let state: LuaState
    let loop: any EventLoop
    let options: any OptionSource
    let services: ServiceRegistry
    let logger: Logger
    let configDirectory: String
    private var loader: LuaReference = .none
    private var timers: [Int: LuaTimer] = [:]
    private var nextTimerID = 1
    /// Set by `close()`: the Lua state is gone, and every entry point returns at once.
    private(set) var isClosed = false
    /// `isClosed` for other threads (a listener released off the Lua loop).
    let lifetime = LuaRuntimeLifetime()
    /// The data of the `onincoming` callback running now, if any (see `IncomingBytes`).
    var incoming: IncomingBytes?

    /// How many VM instructions one callback, timer or module load may run
    /// (`lua_instruction_budget`); 0 means no limit.
    var instructionBudget: Int32 = LuaRuntime.defaultInstructionBudget
    static let defaultInstructionBudget: Int32 = 50_000_000
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
    static func isBudgetExceeded(_ error: LuaError) -> Bool {
        error.message.contains("instruction budget exceeded")
    }

    /// Loads another module for `module:depends`; set by the module manager.
    var loadDependency: ((_ name: String, _ host: String) throws -> ModuleKind)?

    enum ModuleKind {
        case native
        case lua
    }

    init(loop: any EventLoop, options: any OptionSource, services: ServiceRegistry, logger: Logger, configDirectory: String) throws {
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
        ConnectionLuaAPI.register(on: state.stack, runtime: self)
        try installPrelude()
    }

    deinit {
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
    func close() {
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

    /// Runs a module file in its own environment with its own `module` object.
    /// If it fails, nothing it registered stays.
    func loadModule(name: String, host: String, path: String) throws(LuaError) {
        do {
            try callLoader("load", .string(name), .string(host), .string(path))
        } catch {
            discardFailedModule(name: name, host: host)
            throw error
        }
    }

    /// Unloads and loads the module again, handing `module.save()`'s result to the
    /// new `module.restore`. If the new code fails, nothing of either version stays.
    func reloadModule(name: String, host: String) throws(LuaError) {
        do {
            try callLoader("reload", .string(name), .string(host))
        } catch {
            discardFailedModule(name: name, host: host)
            throw error
        }
    }

    /// Removes the hooks, timers and services of a module whose load (or unload) failed, and
    /// forgets it so that the next load runs its file afresh. The failure may have
    /// been the module spending its whole instruction budget or memory, so this
    /// runs with a budget of its own and without the memory limit; the services go
    /// on the Swift side as well, in case even that fails.
    private func discardFailedModule(name: String, host: String) {
        defer { services.removeServices(of: name) }
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
    func unloadModule(name: String, host: String) {
        do {
            try callLoader("unload", .string(name), .string(host))
        } catch {
            logger.error("unloading module '\(name)' failed: \(error.fullDescription)")
            discardFailedModule(name: name, host: host)
        }
    }

    /// Fires a module event from Swift (e.g. "server-started") with an empty data table.
    func fireEvent(_ name: String) {
        do {
            try callLoader("fire_event", .string(name), .table(ConfigTable()))
        } catch {
            logger.error("error in a handler of event '\(name)': \(error.fullDescription)")
        }
    }

    /// Calls `loader[function](arguments...)` from the module API prelude, leaving the stack as it was.
    private func callLoader(_ function: String, _ arguments: ConfigValue...) throws(LuaError) {
        guard !isClosed else { throw LuaError(kind: .runtime, message: "the Lua runtime has stopped") }
        let stack = state.stack
        let base = stack.top
        defer { stack.setTop(base) }
        let count = try pushLoaderCall(function, arguments)
        try withinBudget { () throws(LuaError) in
            try stack.call(arguments: count, results: 0)
        }
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
        if !connection.luaReference.isNone {
            stack.push(connection.luaReference)
            return
        }
        stack.pushUserdata(connection)
        connection.luaReference = stack.makeReference(to: -1)
        connection.finishObserver = self
    }

    func connectionFinished(_ connection: Connection) {
        release(connection.luaReference)
        connection.luaReference = .none
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

    private func installPrelude() throws(LuaError) {
        let stack = state.stack
        try stack.load(ModuleAPIPrelude.source, chunkName: "=nethost.moduleapi")
        stack.newTable()
        let primitives: [String: LuaFunction] = [
            "log": { [unowned self] stack in try log(stack) },
            "get_option": { [unowned self] stack in try getOption(stack, exact: false) },
            "get_option_exact": { [unowned self] stack in try getOption(stack, exact: true) },
            "config_directory": { [unowned self] stack in
                stack.push(configDirectory)
                return 1
            },
            "provide_net": { [unowned self] stack in try provideNet(stack) },
            "remove_services": { [unowned self] stack in
                let module = try stack.checkString(1, function: "remove_services")
                services.removeServices(of: module)
                return 0
            },
            "depends": { [unowned self] stack in try depends(stack) },
            "add_timer": { [unowned self] stack in try addTimer(stack) },
            "stop_timer": { [unowned self] stack in
                stopTimer(try stack.checkInteger(1, function: "stop_timer"))
                return 0
            },
        ]
        for (name, function) in primitives {
            stack.setFunction(name, in: -1, function)
        }
        try stack.call(arguments: 1, results: 1)
        loader = stack.makeReference()
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
        guard let value = options.value(name, host: hostName) else {
            stack.pushNil()
            return 1
        }
        if exact, hostName != nil, options.value(name, host: nil) == value {
            stack.pushNil()  // inherited from the global section, not set on the host
            return 1
        }
        do { try stack.push(value) } catch { throw LuaArgumentError("config option '\(name)': \(error)") }
        return 1
    }

    private func provideNet(_ stack: LuaStack) throws -> Int32 {
        let module = try stack.checkString(1, function: "provides")
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
        var service = NetService(name: name, handling: .listener(listener, .luaLoop), module: module)
        service.defaultPorts = try Self.ports(in: stack, table: 3, service: name)
        if stack.rawGetField("default_interface", from: 3) == .string, let interface = stack.toString(at: -1) {
            service.defaultInterfaces = [interface]
        }
        stack.pop()
        if stack.rawGetField("encryption", from: 3) == .string {
            service.encryption = stack.toString(at: -1)
        }
        stack.pop()
        stack.rawGetField("private", from: 3)
        service.isPrivate = stack.toBoolean(at: -1)
        stack.pop()
        try services.add(service)
        logger.debug("service '\(name)' provided", metadata: ["module": "\(module)"])
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

    private func depends(_ stack: LuaStack) throws -> Int32 {
        let host = try stack.checkString(2, function: "depends")
        let name = try stack.checkString(3, function: "depends")
        guard let loadDependency else { throw LuaArgumentError("module:depends is not available here") }
        switch try loadDependency(name, host) {
        case .native:
            stack.push(true)
            return 1
        case .lua:
            // Already loaded by now: the loader returns the cached module object.
            stack.push(loader)
            stack.rawGetField("load", from: -1)
            stack.push(name)
            stack.push(host)
            stack.pushNil()
            try stack.call(arguments: 3, results: 1)
            return 1
        }
    }

    private func addTimer(_ stack: LuaStack) throws -> Int32 {
        let module = try stack.checkString(1, function: "add_timer")
        let delay = try Self.timerDelay(try stack.checkNumber(3, function: "add_timer"))
        try stack.checkType(4, .function, function: "add_timer")
        let id = nextTimerID
        nextTimerID += 1
        timers[id] = LuaTimer(callback: stack.makeReference(to: 4), module: module)
        schedule(timer: id, after: delay)
        stack.push(id)
        return 1
    }

    /// A timer's delay in seconds as the loop's time, or nil for never. NaN is
    /// refused; a negative delay means at once and an infinite one never, as in
    /// Prosody; one longer than a century is shortened to a century, which no
    /// process outlives and which the loop's clock can still add without overflow.
    static func timerDelay(_ seconds: Double) throws -> TimeAmount? {
        guard !seconds.isNaN else {
            throw LuaArgumentError("a timer's delay must be a number of seconds, got NaN")
        }
        guard seconds.isFinite || seconds < 0 else { return nil }
        let century = 100 * 365.25 * 86_400.0
        return .nanoseconds(Int64(min(max(0, seconds), century) * 1_000_000_000))
    }

    private func schedule(timer id: Int, after delay: TimeAmount?) {
        guard let delay else { return }  // never: the timer stays, so that stop() still finds it
        timers[id]?.task = loop.assumeIsolatedUnsafeUnchecked().scheduleTask(in: delay) { [unowned self] in
            fire(timer: id)
        }
    }

    /// Runs a timer's callback; a number it returns re-arms it, anything else ends it.
    private func fire(timer id: Int) {
        // The entry stays while the callback runs, so a `stop()` inside it is seen.
        guard !isClosed, let timer = timers[id] else { return }
        let stack = state.stack
        let base = stack.top
        defer { stack.setTop(base) }
        stack.push(timer.callback)
        stack.push(Double(loop.now.uptimeNanoseconds) / 1e9)  // the loop's clock, which tests drive
        do {
            try withinBudget { () throws(LuaError) in try stack.call(arguments: 1, results: 1) }
            guard timers[id] != nil else { return }  // stopped by its own callback
            if let again = stack.toNumber(at: -1) {
                schedule(timer: id, after: try Self.timerDelay(again))
                return
            }
        } catch {
            logger.error("error in timer callback, the timer is stopped: \(ErrorDescription(error))", metadata: ["module": "\(timer.module)"])
        }
        stopTimer(id)
    }

    /// Cancels a timer and gives back its callback's registry slot.
    private func stopTimer(_ id: Int) {
        guard let timer = timers.removeValue(forKey: id) else { return }
        timer.task?.cancel()
        release(timer.callback)
    }
}

/// A module's timer: its callback, kept in the registry until the timer ends.
private struct LuaTimer {
    let callback: LuaReference
    let module: String
    var task: Scheduled<Void>?
}

/// Whether the runtime has closed its Lua state, readable from any thread.
final class LuaRuntimeLifetime: Sendable {
    private let closed = Atomic<Bool>(false)
    var isClosed: Bool { closed.load(ordering: .acquiring) }
    func markClosed() { closed.store(true, ordering: .releasing) }
}

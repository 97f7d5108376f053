import Logging
import NIOCore

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
    private var timers: [Int: Scheduled<Void>] = [:]
    /// One `LuaListener` per listener table, so `provides` and `conn:setlistener`
    /// reuse them instead of making a registry entry per call.
    private var listeners: [UnsafeRawPointer: LuaListener] = [:]
    private var nextTimerID = 1
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
        for timer in timers.values { timer.cancel() }
    }

    // MARK: Loading modules

    /// Runs a module file in its own environment with its own `module` object.
    func loadModule(name: String, host: String, path: String) throws(LuaError) {
        try callLoader("load", .string(name), .string(host), .string(path))
    }

    /// Unloads and loads the module again, handing `module.save()`'s result to the
    /// new `module.restore`.
    func reloadModule(name: String, host: String) throws(LuaError) {
        try callLoader("reload", .string(name), .string(host))
    }

    /// Calls the module's `unload` and removes everything it registered.
    func unloadModule(name: String, host: String) {
        do {
            try callLoader("unload", .string(name), .string(host))
        } catch {
            logger.error("unloading module '\(name)' failed: \(error.fullDescription)")
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
        let stack = state.stack
        let base = stack.top
        defer { stack.setTop(base) }
        stack.push(loader)
        stack.rawGetField(function, from: -1)
        for argument in arguments {
            do { try stack.push(argument) } catch { throw LuaError(kind: .runtime, message: "loader.\(function): \(error)") }
        }
        try withinBudget { () throws(LuaError) in
            try stack.call(arguments: Int32(arguments.count), results: 0)
        }
    }

    /// Pushes the one userdata that stands for `connection` in Lua. [-0, +1]
    func push(_ connection: Connection) {
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
        state.stack.release(connection.luaReference)
        connection.luaReference = .none
    }

    /// Drops the listener cache at shutdown: each listener holds the runtime, so
    /// the cache would otherwise keep the runtime (and its Lua state) alive forever.
    func releaseListeners() {
        listeners.removeAll()
    }

    /// The listener for the table at `index`, made on first use. [-0, +0]
    func listener(forTableAt index: Int32, module: String) -> LuaListener {
        let stack = state.stack
        let identity = stack.identity(at: index)
        if let existing = identity.flatMap({ listeners[$0] }) { return existing }
        stack.rawGetField("ondrain", from: index)
        let wantsDrain = stack.type(at: -1) == .function
        stack.pop()
        let listener = LuaListener(runtime: self, table: stack.makeReference(to: index), wantsDrain: wantsDrain, module: module)
        if let identity { listeners[identity] = listener }
        return listener
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
                let id = try stack.checkInteger(1, function: "stop_timer")
                timers.removeValue(forKey: id)?.cancel()
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
        let delay = try stack.checkNumber(3, function: "add_timer")
        try stack.checkType(4, .function, function: "add_timer")
        let callback = stack.makeReference(to: 4)
        let id = nextTimerID
        nextTimerID += 1
        schedule(timer: id, callback: callback, module: module, after: delay)
        stack.push(id)
        return 1
    }

    /// Runs `callback` after `delay` seconds; a number it returns re-arms it.
    private func schedule(timer id: Int, callback: LuaReference, module: String, after delay: Double) {
        let amount = TimeAmount.nanoseconds(Int64(max(0, delay) * 1_000_000_000))
        timers[id] = loop.assumeIsolatedUnsafeUnchecked().scheduleTask(in: amount) { [unowned self] in
            // The entry stays while the callback runs, so a `stop()` inside it is seen.
            guard timers[id] != nil else { return }
            let stack = state.stack
            let base = stack.top
            defer { stack.setTop(base) }
            stack.push(callback)
            stack.push(Double(NIODeadline.now().uptimeNanoseconds) / 1e9)
            do {
                try withinBudget { () throws(LuaError) in try stack.call(arguments: 1, results: 1) }
                if let again = stack.toNumber(at: -1), timers[id] != nil {
                    schedule(timer: id, callback: callback, module: module, after: again)
                    return
                }
            } catch {
                logger.error("error in timer callback: \(ErrorDescription(error))", metadata: ["module": "\(module)"])
            }
            timers[id] = nil
            stack.release(callback)
        }
    }
}

import CoreMetrics
import Logging
import LuaBridge
import NetHostConfig
import NetHostCore
import NetHostLua
import NIOCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Loads and unloads modules by name and host, as Prosody's module manager does:
/// native Swift modules first, then Lua modules from the plugin paths. Which
/// modules load on which host is `ModulePlan`'s; reloading is in
/// `ModuleManager+Reload.swift`. Lives on the Lua loop, like the Lua state.
/// A module that fails to load is reported and skipped; the others still load.
public final class ModuleManager {
    public struct LoadError: Error, CustomStringConvertible, Sendable {
        public let module: String
        public var host = ModuleKey.globalHost
        public let reason: String
        /// The module's options are wrong: start-up must stop, as for a config error.
        public var isConfigurationError = false
        /// One of Prosody's own XMPP modules, which NetHost does not host: a note, not a failure.
        public var isProsodyXMPPModule = false

        public init(module: String, host: String = ModuleKey.globalHost, reason: String, isConfigurationError: Bool = false) {
            self.module = module
            self.host = host
            self.reason = reason
            self.isConfigurationError = isConfigurationError
        }

        public var description: String {
            isConfigurationError
                ? "\(module): \(reason)"
                : "module \(ModuleKey(module, host: host)) failed to load: \(reason)"
        }
    }

    let runtime: LuaRuntime
    let natives: [String: any NativeModule.Type]
    private let finder: LuaModuleFinder
    /// Recognises the Prosody modules a shared config enables, which are not NetHost's to load.
    let prosodyModules = ProsodyXMPPModules()
    let options: any OptionSource
    let services: ServiceRegistry
    private let group: any EventLoopGroup
    let logger: Logger
    public let problems: ProblemLog
    /// What `nethost check` should mention without calling it a problem: a user's
    /// module that takes the place of a built-in one.
    public let notes: ProblemLog
    /// Where native modules offer connections to close at `max_connections`.
    let shedding: LoadShedding
    /// What native modules may read of the server's state (`ModuleContext.status`).
    let status: HostStatus

    enum Loaded {
        case native(any NativeModule)
        /// A native module in a loop's own Lua state (`lua_per_loop_services`): native
        /// modules load once, in the primary state's manager; here only its name stands.
        case nativeElsewhere
        /// `version`: the file's identity when loaded, to see it change.
        case lua(path: String, version: FileVersion)
        /// The add_host instance, on a host, of the global Lua module of the same name.
        case hosted
    }

    struct Entry {
        var module: Loaded
        /// When it loaded: unloading goes in the reverse order.
        var order: Int
    }

    var loaded: [ModuleKey: Entry] = [:]
    private var nextOrder = 0
    /// Modules whose file or add_host is running now; `module:depends` on one of
    /// them gets its environment as it stands (Prosody's answer to a cycle).
    var loading: Set<ModuleKey> = []
    var dependencies = ModuleDependencies()
    /// What the config asks for; a reload computes it again.
    var plan: ModulePlan
    /// Whether this manager runs the primary Lua state (Prosody's one state, with the
    /// native modules) or the Lua state of another event loop (`lua_per_loop_services`).
    public let isPrimary: Bool

    public init(
        group: any EventLoopGroup,
        luaLoop: any EventLoop,
        options: any OptionSource,
        services: ServiceRegistry,
        natives: [any NativeModule.Type],
        finder: LuaModuleFinder,
        configDirectory: String,
        logger: Logger,
        problems: ProblemLog = ProblemLog(),
        notes: ProblemLog = ProblemLog(),
        shedding: LoadShedding = LoadShedding(),
        status: HostStatus = HostStatus(),
        metricsFactory: any MetricsFactory = MetricsSystem.factory,
        luaStates: LuaStatePlacement = LuaStatePlacement()
    ) throws {
        self.runtime = try LuaRuntime(
            loop: luaLoop, options: options, services: services, logger: logger, configDirectory: configDirectory,
            connectionMethods: natives.reduce(into: [:]) { methods, native in
                methods.merge(native.luaConnectionMethods) { first, _ in first }
            },
            metricsFactory: metricsFactory,
            perLoop: luaStates.perLoop, sharedDicts: luaStates.sharedDicts,
            stateIndex: luaStates.index, stateCount: luaStates.count
        )
        self.isPrimary = luaStates.index == 1
        if let budget = options.value(ModuleOptions.luaInstructionBudget)?.integerValue, budget >= 0 {
            runtime.instructionBudget = Int32(clamping: budget)
        }
        if let limit = options.value(ModuleOptions.luaMemoryLimit)?.integerValue, limit > 0 {
            runtime.state.memoryLimit = limit
        }
        self.natives = Dictionary(natives.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        self.finder = finder
        self.options = options
        self.services = services
        self.group = group
        self.logger = logger
        self.problems = problems
        self.notes = notes
        self.shedding = shedding
        self.status = status
        self.plan = ModulePlan(options: options)
        runtime.loadDependency = { [unowned self] name, dependent in
            try dependency(name, of: dependent)
        }
        runtime.hostType = { [unowned self] host in
            self.options.definedHosts.first { $0.name == host }?.isComponent == true ? "component" : "local"
        }
    }

    /// The global modules the config enables: `modules_enabled` less
    /// `modules_disabled`, in order, without repeats. Disabling a module that does
    /// not exist is fine.
    public static func enabledModules(in options: any OptionSource) -> [String] {
        ModulePlan(options: options).global
    }

    /// Loads every module the config asks for: the global ones, then each host's
    /// (see `ModulePlan`); returns the failures, which are also logged.
    @discardableResult
    public func loadEnabledModules() -> [LoadError] {
        plan = ModulePlan(options: options)
        reportPlanProblems()
        let attempts = loadPlannedModules()
        for case .native(let module) in loaded.values.map(\.module) {
            module.allModulesLoaded()
        }
        reportNotHosted(attempts.filter(\.isProsodyXMPPModule))
        let failures = attempts.filter { !$0.isProsodyXMPPModule }
        for failure in failures {
            logger.error("\(failure)")
            problems.add(failure.description)
        }
        return failures
    }

    /// Prosody's XMPP modules that the config enables: one line for all of them,
    /// logged at info and noted for `nethost check`, as a shared config is not wrong.
    func reportNotHosted(_ skipped: [LoadError]) {
        var names: [String] = []
        for error in skipped where !names.contains(error.module) { names.append(error.module) }
        guard !names.isEmpty else { return }
        let note = "Prosody's XMPP modules, which NetHost does not host, are not loaded: \(names.joined(separator: ", "))"
        logger.info("\(note)")
        notes.add(note)
    }

    /// Module lists in the config that are not lists of names: logged, and reported by `nethost check`.
    func reportPlanProblems() {
        for problem in plan.problems {
            logger.error("\(problem)")
            problems.add(problem)
        }
    }

    /// Loads what the plan asks for and is not loaded yet; returns the failures.
    func loadPlannedModules() -> [LoadError] {
        var failures: [LoadError] = []
        func attempt(_ name: String, on host: String) {
            do {
                try load(name, host: host)
            } catch let error as LoadError {
                failures.append(error)
            } catch {
                failures.append(LoadError(module: name, host: host, reason: "\(error)"))
            }
        }
        for name in plan.global {
            attempt(name, on: ModuleKey.globalHost)
        }
        for host in plan.hosts {
            for name in host.modules {
                // A global module that failed globally is not tried again per host.
                if plan.global.contains(name), loaded[ModuleKey(name)] == nil { continue }
                attempt(name, on: host.name)
            }
        }
        return failures
    }

    /// The global modules that are loaded, by name.
    public var loadedModules: [String] { loadedModules(on: ModuleKey.globalHost) }

    /// The modules loaded on a host (add_host instances included), by name.
    public func loadedModules(on host: String) -> [String] {
        loaded.keys.filter { $0.host == host }.map(\.name).sorted()
    }

    /// The native module to load for `name`: none when a plugin path has a Lua
    /// file of that name, which wins as it would over Prosody's own modules.
    func nativeModule(named name: String) -> (any NativeModule.Type)? {
        guard let native = natives[name], finder.findInPluginPaths(name) == nil else { return nil }
        return native
    }

    /// What the user's file at `path` takes the place of, if anything: a native
    /// module, or a Lua module shipped with NetHost.
    private func builtIn(named name: String, besides path: String) -> String? {
        guard finder.findInPluginPaths(name) == path else { return nil }
        if natives[name] != nil { return "native module" }
        if let shipped = finder.shippedModules,
           let file = LuaModuleFinder(pluginPaths: [shipped], shippedModules: nil).findInPluginPaths(name) {
            return "Lua module \(file)"
        }
        return nil
    }

    public func isLoaded(_ name: String, host: String = ModuleKey.globalHost) -> Bool {
        loaded[ModuleKey(name, host: host)] != nil
    }

    /// Loads a module on a host (and, through `module:depends`, what it needs);
    /// returns where it is. On a host, a module that is loaded globally gets its
    /// `add_host` called for the host, if it has one, as in Prosody. A module that
    /// calls `set_global` while loading ends up global, and then likewise.
    /// A native module is always global.
    @discardableResult
    public func load(_ name: String, host: String = ModuleKey.globalHost) throws -> ModuleKey {
        let native = nativeModule(named: name)
        let key = ModuleKey(name, host: native == nil ? host : ModuleKey.globalHost)
        if loaded[key] != nil { return key }
        let global = ModuleKey(name)
        if !key.isGlobal, let entry = loaded[global] {
            guard case .lua = entry.module, try addHost(name, host: host) else { return global }
            return key
        }
        guard LuaModuleFinder.isValidName(name) else {
            throw LoadError(module: name, host: host, reason: "not a valid module name")
        }
        if let native {
            try loadNative(native, name: name)
            return key
        }
        let (found, lookedIn) = finder.find(name)
        if found == nil, prosodyModules.contains(name) {
            var error = LoadError(module: name, host: host, reason: "one of Prosody's XMPP modules, which NetHost does not host")
            error.isProsodyXMPPModule = true
            throw error
        }
        if let found, let shadowed = builtIn(named: name, besides: found) {
            let note = "module '\(name)' is loaded from \(found) (plugin_paths), in place of NetHost's built-in \(shadowed)"
            logger.notice("\(note)")
            notes.add(note)
        }
        guard let path = found else {
            throw LoadError(module: name, host: host, reason: "no native module of that name, and no file in: \(lookedIn.joined(separator: ", "))")
        }
        guard loading.insert(key).inserted else {
            throw LoadError(module: name, host: host, reason: "it is loading already")
        }
        let whereItIs: String
        do {
            whereItIs = try runtime.loadModule(name: name, host: host, path: path)
            loading.remove(key)
        } catch {
            loading.remove(key)
            forgetFailed(key)
            throw LoadError(module: name, host: host, reason: Self.describe(error, budget: runtime.instructionBudget))
        }
        let actual = ModuleKey(name, host: whereItIs)
        dependencies.rename(key, to: actual)
        record(actual, .lua(path: path, version: FileVersion(path: path)))
        logger.info("loaded Lua module \(actual) from \(path)")
        var result = actual
        if actual != key {
            // It called set_global: as Prosody does, it is then loaded on the host
            // it was asked for, before module-loaded, and if that fails the load failed.
            do {
                if try addHost(name, host: host, announce: false) { result = key }
            } catch {
                loaded[actual] = nil
                runtime.discardModule(name: name, host: actual.host)
                forgetFailed(actual)
                throw error
            }
        }
        runtime.fireLifecycle("module-loaded", name: name, host: actual.host)
        return result
    }

    /// Gives a global Lua module's `add_host` the host; false if it has none.
    /// `announce`: fire module-loaded on the host.
    func addHost(_ name: String, host: String, announce: Bool = true) throws -> Bool {
        let key = ModuleKey(name, host: host)
        if loaded[key] != nil { return true }
        guard loading.insert(key).inserted else { return true }
        defer { loading.remove(key) }
        do {
            guard try runtime.addHost(name: name, host: host) else { return false }
        } catch {
            forgetFailed(key)
            throw LoadError(module: name, host: host, reason: "add_host failed: " + Self.describe(error, budget: runtime.instructionBudget))
        }
        record(key, .hosted)
        logger.debug("module '\(name)' added to host '\(host)'")
        if announce { runtime.fireLifecycle("module-loaded", name: name, host: host) }
        return true
    }

    func record(_ key: ModuleKey, _ module: Loaded, order: Int? = nil) {
        if let order {
            loaded[key] = Entry(module: module, order: order)
        } else {
            loaded[key] = Entry(module: module, order: nextOrder)
            nextOrder += 1
        }
    }

    /// A module whose load failed leaves no dependency behind; modules that
    /// loaded against its half-made environment (a cycle) go too.
    private func forgetFailed(_ key: ModuleKey) {
        dependencies.removeDependencies(of: key)
        unloadDependents(of: key)
    }

    /// `module:depends(name)` from `dependent`: a module on the dependent's host,
    /// else the global one (its add_host instance for the host, if it has
    /// add_host), else loaded now. Returns its key; nil for a native module.
    private func dependency(_ name: String, of dependent: ModuleKey) throws -> ModuleKey? {
        let onHost = ModuleKey(name, host: dependent.host)
        let global = ModuleKey(name)
        let target: ModuleKey
        if loaded[onHost] != nil || loading.contains(onHost) {
            target = onHost
        } else if loading.contains(global) {
            target = global
        } else {
            do {
                target = try load(name, host: dependent.host)
            } catch let error as LoadError {
                throw LuaArgumentError("Unable to load required module, mod_\(name): \(error.reason)")
            }
        }
        dependencies.add(target, of: dependent)
        switch loaded[target]?.module {
        case .native?, .nativeElsewhere?: return nil
        default: break
        }
        return target
    }

    /// A Lua load error as the log shows it; running out of instruction budget is said in words.
    static func describe(_ error: LuaError, budget: Int32) -> String {
        if error.message.hasPrefix(ProsodyLibrary.missingMessagePrefix) { return error.message }
        guard LuaRuntime.isBudgetExceeded(error) else { return error.fullDescription }
        return "it ran past its budget of \(budget) Lua instructions while loading (lua_instruction_budget): \(error.fullDescription)"
    }

    private func loadNative(_ type: any NativeModule.Type, name: String) throws {
        guard isPrimary else {
            // Native modules run once, beside the primary state; this state's Lua modules
            // may still depend on one by name.
            record(ModuleKey(name), .nativeElsewhere)
            runtime.fireLifecycle("module-loaded", name: name, host: ModuleKey.globalHost)
            return
        }
        var moduleLogger = logger
        moduleLogger[metadataKey: "module"] = "\(name)"
        let context = ModuleContext(
            name: name, host: ModuleKey.globalHost, options: options, logger: moduleLogger, services: services,
            group: group, luaLoop: runtime.loop, shedding: shedding, status: status,
            problems: problems
        )
        do {
            let module = try type.init(context: context)
            try module.load()
            record(ModuleKey(name), .native(module))
            logger.debug("loaded native module '\(name)'")
        } catch {
            services.removeServices(of: name)
            throw LoadError(module: name, reason: "\(error)", isConfigurationError: error is any ModuleConfigurationError)
        }
        runtime.fireLifecycle("module-loaded", name: name, host: ModuleKey.globalHost)
    }

    /// Unloads a module: its `unload` runs, and its services, hooks, items and
    /// timers go; then `module-unloaded` fires, and the modules that depend on
    /// it are unloaded too, as in Prosody. A global module's add_host instances
    /// are unloaded first.
    public func unload(_ name: String, host: String = ModuleKey.globalHost) {
        unload(ModuleKey(name, host: host))
    }

    func unload(_ key: ModuleKey) {
        guard let entry = loaded[key] else { return }
        if key.isGlobal {
            for hosted in hostedInstances(of: key.name).reversed() {
                unload(hosted)
            }
        }
        loaded[key] = nil
        switch entry.module {
        case .native(let native):
            native.unload()
            services.removeServices(of: key.name)
        case .nativeElsewhere:
            break
        case .lua, .hosted:
            runtime.unloadModule(name: key.name, host: key.host)
        }
        dependencies.removeDependencies(of: key)
        logger.info("unloaded module \(key)")
        runtime.fireLifecycle("module-unloaded", name: key.name, host: key.host)
        unloadDependents(of: key)
    }

    func unloadDependents(of key: ModuleKey) {
        for dependent in inLoadOrder(dependencies.dependents(of: key)).reversed() where loaded[dependent] != nil {
            logger.info("unloading module \(dependent): it depends on module \(key), which is gone")
            unload(dependent)
        }
    }

    /// The add_host instances of a global module, in load order.
    func hostedInstances(of name: String) -> [ModuleKey] {
        inLoadOrder(loaded.compactMap { key, entry in
            guard key.name == name, case .hosted = entry.module else { return nil }
            return key
        })
    }

    func inLoadOrder(_ keys: some Sequence<ModuleKey>) -> [ModuleKey] {
        keys.sorted { (loaded[$0]?.order ?? Int.max) < (loaded[$1]?.order ?? Int.max) }
    }

    /// Shutdown, as Prosody does it: modules are not unloaded (a module's
    /// `unload` means an operator removed or reloaded it), `server-cleanup` and
    /// `server-stopped` fire, then the Lua state closes, so that finalizers run
    /// while the host can still serve their calls. Native modules are told to
    /// unload, in the reverse of their load order, so that they flush their logs.
    public func stop() {
        guard !runtime.isClosed else { return }
        runtime.fireEvent("server-cleanup")
        runtime.fireEvent("server-stopped")
        for key in inLoadOrder(loaded.keys).reversed() {
            if case .native(let native) = loaded[key]?.module {
                native.unload()
            }
        }
        runtime.close()
    }

    /// Every native module logs its counters, in name order (SIGUSR1).
    public func logStatistics() {
        for case (_, .native(let module)) in loaded.map({ ($0.key, $0.value.module) }).sorted(by: { $0.0.name < $1.0.name }) {
            module.logStatistics()
        }
    }

    /// Fires an event on the global events (e.g. "server-started", "server-stopping").
    public func fireEvent(_ name: String, host: String = "*") {
        runtime.fireEvent(name, host: host)
    }
}

/// Which version of a file is on disk: its inode, size and modification time.
/// The inode catches an editor's save-by-rename even within one clock tick.
struct FileVersion: Equatable {
    let inode: UInt64
    let size: Int64
    let modified: Int

    init(path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else {
            (inode, size, modified) = (0, -1, 0)
            return
        }
        inode = UInt64(info.st_ino)
        size = Int64(info.st_size)
        // The same timespec under the name each C library gives it.
        #if canImport(Darwin)
        let time = info.st_mtimespec
        #else
        let time = info.st_mtim
        #endif
        modified = Int(time.tv_sec) * 1_000_000_000 + Int(time.tv_nsec)
    }
}

/// Which Lua state a module manager runs, among the server's (`lua_per_loop_services`):
/// its number (1: the primary state, which also loads the native modules), how
/// many there are, which services run per loop, and the store they share.
public struct LuaStatePlacement: Sendable {
    public var index: Int
    public var count: Int
    public var perLoop: PerLoopLua
    public var sharedDicts: SharedDicts

    public init(index: Int = 1, count: Int = 1, perLoop: PerLoopLua = .none, sharedDicts: SharedDicts = SharedDicts()) {
        self.index = index
        self.count = count
        self.perLoop = perLoop
        self.sharedDicts = sharedDicts
    }
}

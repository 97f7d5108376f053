import Logging
import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// Loads and unloads modules by name: native Swift modules first, then Lua
/// modules from the plugin paths. Lives on the Lua loop, like the Lua state.
/// A module that fails to load is reported and skipped; the others still load.
public final class ModuleManager {
    public struct LoadError: Error, CustomStringConvertible, Sendable {
        public let module: String
        public let reason: String
        /// The module's options are wrong: start-up must stop, as for a config error.
        public var isConfigurationError = false
        public var description: String {
            isConfigurationError ? "\(module): \(reason)" : "module '\(module)' failed to load: \(reason)"
        }
    }

    let runtime: LuaRuntime
    private let natives: [String: any NativeModule.Type]
    private let finder: LuaModuleFinder
    private let options: any OptionSource
    private let services: ServiceRegistry
    private let group: any EventLoopGroup
    private let logger: Logger
    public let problems: ProblemLog

    private enum Loaded {
        case native(any NativeModule)
        /// `version`: the file's identity when loaded, to see it change.
        case lua(path: String, version: FileVersion)
    }
    private var loaded: [String: Loaded] = [:]
    private var loading: Set<String> = []

    public init(
        group: any EventLoopGroup,
        luaLoop: any EventLoop,
        options: any OptionSource,
        services: ServiceRegistry,
        natives: [any NativeModule.Type],
        finder: LuaModuleFinder,
        configDirectory: String,
        logger: Logger,
        problems: ProblemLog = ProblemLog()
    ) throws {
        self.runtime = try LuaRuntime(
            loop: luaLoop, options: options, services: services, logger: logger, configDirectory: configDirectory
        )
        if let budget = options.value("lua_instruction_budget", host: nil)?.integerValue, budget >= 0 {
            runtime.instructionBudget = Int32(clamping: budget)
        }
        if let limit = options.value("lua_memory_limit", host: nil)?.integerValue, limit > 0 {
            runtime.state.memoryLimit = limit
        }
        self.natives = Dictionary(natives.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        self.finder = finder
        self.options = options
        self.services = services
        self.group = group
        self.logger = logger
        self.problems = problems
        runtime.loadDependency = { [unowned self] name, host in
            try load(name, host: host)
            return self.natives.keys.contains(name) ? .native : .lua
        }
    }

    /// The modules the config enables: `modules_enabled` less `modules_disabled`,
    /// in order, without repeats. Disabling a module that does not exist is fine.
    public static func enabledModules(in options: any OptionSource, host: String? = nil) -> [String] {
        let disabled = Set(options.stringList("modules_disabled", host: host) ?? [])
        var seen: Set<String> = []
        return (options.stringList("modules_enabled", host: host) ?? []).filter { name in
            !disabled.contains(name) && seen.insert(name).inserted
        }
    }

    /// Loads every enabled module; returns the failures, which are also logged.
    @discardableResult
    public func loadEnabledModules() -> [LoadError] {
        var failures: [LoadError] = []
        for name in Self.enabledModules(in: options) {
            do {
                try load(name)
            } catch let error as LoadError {
                failures.append(error)
            } catch {
                failures.append(LoadError(module: name, reason: "\(error)"))
            }
        }
        for case .native(let module) in loaded.values {
            module.allModulesLoaded()
        }
        for failure in failures {
            logger.error("\(failure)")
            problems.add(failure.description)
        }
        return failures
    }

    public var loadedModules: [String] { loaded.keys.sorted() }

    /// After the options were replaced: every native module checks its new
    /// options first (one refusal and nothing changes), then they apply them,
    /// then modules newly in `modules_enabled` load and those no longer in it unload.
    public func reload() throws {
        var apply: [@Sendable () -> Void] = []
        for case (let name, .native(let module)) in loaded.sorted(by: { $0.key < $1.key }) {
            do {
                apply.append(try module.prepareReload())
            } catch {
                throw LoadError(module: name, reason: "\(error)", isConfigurationError: true)
            }
        }
        for step in apply { step() }
        for case (let name, .lua(let path, let version)) in loaded.sorted(by: { $0.key < $1.key })
        where FileVersion(path: path) != version {
            reloadLuaModule(name)
        }
        let enabled = Self.enabledModules(in: options)
        for name in loaded.keys.sorted() where !enabled.contains(name) {
            unload(name)
        }
        for name in enabled where loaded[name] == nil {
            do {
                try load(name)
                logger.info("loaded module '\(name)' on reload")
            } catch {
                logger.error("\(error)")
                problems.add("\(error)")
            }
        }
    }

    public func isLoaded(_ name: String) -> Bool { loaded[name] != nil }

    /// Loads one module (and, through `module:depends`, what it needs).
    public func load(_ name: String, host: String = "*") throws {
        guard loaded[name] == nil else { return }
        guard LuaModuleFinder.isValidName(name) else {
            throw LoadError(module: name, reason: "not a valid module name")
        }
        guard loading.insert(name).inserted else {
            throw LoadError(module: name, reason: "circular dependency")
        }
        defer { loading.remove(name) }
        if let native = natives[name] {
            try loadNative(native, name: name, host: host)
            return
        }
        let (found, lookedIn) = finder.find(name)
        guard let path = found else {
            throw LoadError(module: name, reason: "no native module of that name, and no file in: \(lookedIn.joined(separator: ", "))")
        }
        do {
            try runtime.loadModule(name: name, host: host, path: path)
        } catch {
            throw LoadError(module: name, reason: Self.describe(error, of: name, budget: runtime.instructionBudget))
        }
        loaded[name] = .lua(path: path, version: FileVersion(path: path))
        logger.debug("loaded Lua module '\(name)' from \(path)")
    }

    /// A Lua load error as the log shows it; running out of instruction budget is said in words.
    private static func describe(_ error: LuaError, of name: String, budget: Int32) -> String {
        guard LuaRuntime.isBudgetExceeded(error) else { return error.fullDescription }
        return "it ran past its budget of \(budget) Lua instructions while loading (lua_instruction_budget): \(error.fullDescription)"
    }

    private func loadNative(_ type: any NativeModule.Type, name: String, host: String) throws {
        var moduleLogger = logger
        moduleLogger[metadataKey: "module"] = "\(name)"
        let context = ModuleContext(
            name: name, host: host, options: options, logger: moduleLogger, services: services,
            group: group, luaLoop: runtime.loop, problems: problems
        )
        do {
            let module = try type.init(context: context)
            try module.load()
            loaded[name] = .native(module)
            logger.debug("loaded native module '\(name)'")
        } catch {
            services.removeServices(of: name)
            throw LoadError(module: name, reason: "\(error)", isConfigurationError: error is any ModuleConfigurationError)
        }
    }

    /// Reloads a Lua module from its file (Prosody's module reload, with
    /// `module.save`/`module.restore`). Its open connections keep working with
    /// the code they started with; new ones get the new code. If the new code
    /// fails to load, the error is logged and the module is gone.
    public func reloadLuaModule(_ name: String, host: String = "*") {
        guard case .lua(let path, _) = loaded[name] else { return }
        do {
            try runtime.reloadModule(name: name, host: host)
            loaded[name] = .lua(path: path, version: FileVersion(path: path))
            logger.info("reloaded module '\(name)' from \(path)")
        } catch {
            loaded[name] = nil
            logger.error("reloading module '\(name)' failed, it is unloaded: \(error.fullDescription)")
            problems.add("module '\(name)' failed to reload: \(error.message)")
        }
    }

    /// Unloads a module: its `unload` runs, and its services, hooks and timers go.
    public func unload(_ name: String, host: String = "*") {
        guard let module = loaded.removeValue(forKey: name) else { return }
        switch module {
        case .native(let native):
            native.unload()
            services.removeServices(of: name)
        case .lua:
            runtime.unloadModule(name: name, host: host)
        }
        logger.info("unloaded module '\(name)'")
    }

    public func unloadAll() {
        for name in loaded.keys.sorted().reversed() {
            unload(name)
        }
        runtime.close()
    }

    /// Every native module logs its counters, in name order (SIGUSR1).
    public func logStatistics() {
        for case (_, .native(let module)) in loaded.sorted(by: { $0.key < $1.key }) {
            module.logStatistics()
        }
    }

    /// Fires an event every Lua module can hook (e.g. "server-started", "server-stopping").
    public func fireEvent(_ name: String) {
        runtime.fireEvent(name)
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
        modified = Int(info.st_mtim.tv_sec) * 1_000_000_000 + Int(info.st_mtim.tv_nsec)
    }
}

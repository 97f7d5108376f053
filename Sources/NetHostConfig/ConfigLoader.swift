import LuaBridge
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A loaded config: the settings and the warnings about them.
public struct LoadedConfig: Sendable {
    public var configuration: Configuration
    public var diagnostics: [ConfigDiagnostic]

    public init(configuration: Configuration, diagnostics: [ConfigDiagnostic] = []) {
        self.configuration = configuration
        self.diagnostics = diagnostics
    }
}

/// Runs a Prosody-style config file (`prosody.cfg.lua`) and turns it into a
/// `Configuration`.
///
/// Each load gets a fresh Lua state with only the safe libraries (base without
/// file loaders, string, table, math, utf8, coroutine) and an `os` table with
/// `getenv`, `time`, `date` and `clock`. It is not the modules' state, and it
/// is closed when the load ends.
public enum ConfigLoader {
    /// How many Lua instructions a config may run: far beyond any real config,
    /// but an endless loop ends with an error instead of hanging start-up.
    package static let instructionBudget: Int32 = 100_000_000

    /// Loads the config file at `path`. Errors and warnings name files as
    /// given: `path` itself, and included files relative to it.
    /// `environment` answers `ENV_NAME` and `os.getenv`; `registry` says which
    /// options belong in the global section only (pass the one with the native
    /// modules' options, as `nethost` does).
    public static func load(
        path: String,
        environment: [String: String] = ProcessInfo.processInfo.environment,
        registry: OptionRegistry
    ) throws(ConfigError) -> LoadedConfig {
        let contents: [UInt8]
        do {
            contents = try ConfigFiles.read(path)
        } catch {
            throw ConfigError(.unreadable(file: path, reason: error.description), file: path, line: nil,
                              message: "cannot read the config file: \(error.description)")
        }
        return try run(contents, path: path, environment: environment, registry: registry)
    }

    /// Loads config source held in memory, as if it were the file at `path`
    /// (which names it in messages and anchors relative `Include`s and
    /// `FileContents`). Meant for tests and tools.
    public static func load(
        source: String,
        path: String = "prosody.cfg.lua",
        environment: [String: String] = [:],
        registry: OptionRegistry
    ) throws(ConfigError) -> LoadedConfig {
        try run(Array(source.utf8), path: path, environment: environment, registry: registry)
    }

    private static func run(
        _ contents: [UInt8], path: String, environment: [String: String], registry: OptionRegistry
    ) throws(ConfigError) -> LoadedConfig {
        let lua: LuaState
        do {
            lua = try LuaState(libraries: .safe)
        } catch {
            throw ConfigError(.lua, file: path, line: nil, message: error.message)
        }
        let stack = lua.stack
        let saved = stack.top
        defer { stack.setTop(saved) }

        let run = ConfigRun(environment: environment, registry: registry)
        ConfigOSLibrary.install(on: stack, environment: environment)
        run.installEnvironment(on: stack)
        run.createGlobalSection(on: stack, location: ConfigLocation(file: path, line: 0))
        let main = run.addSource(path: path)
        run.mainSource = main

        stack.setInstructionBudget(instructionBudget)
        defer { stack.setInstructionBudget(0) }
        do {
            try run.run(main, contents: contents, on: stack)
        } catch {
            throw run.configError(from: error)
        }
        let configuration = try run.makeConfiguration(on: stack)
        return LoadedConfig(configuration: configuration, diagnostics: run.diagnostics)
    }
}

import NetHostCore
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NetHostConfig
import NetHostLogging

extension OptionRegistry {
    /// What the NetHost library itself reads, and the Prosody options it accepts.
    public static let core = OptionRegistry([
        ModuleOptions.group, ListenOptions.group, NetworkOptions.group, ShutdownOptions.group,
        TLSConfigOptions.group, LoggingOptions.group, ProsodyOptions.group,
    ])

    /// The core's options and those of each native module.
    public init(nativeModules: [any NativeModule.Type], adding more: [Group] = []) {
        self = Self.core.adding(
            nativeModules.filter { !$0.declaredOptions.isEmpty }.map { Group($0.name, options: $0.declaredOptions) } + more
        )
    }
}

extension ConfigLoader {
    /// Loads the config file at `path`, knowing the options of the NetHost library alone.
    public static func load(
        path: String,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(ConfigError) -> LoadedConfig {
        try load(path: path, environment: environment, registry: .core)
    }

    /// Loads config source held in memory, knowing the options of the NetHost library alone.
    public static func load(
        source: String,
        path: String = "prosody.cfg.lua",
        environment: [String: String] = [:]
    ) throws(ConfigError) -> LoadedConfig {
        try load(source: source, path: path, environment: environment, registry: .core)
    }
}

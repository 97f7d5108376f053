import Foundation
import Logging
import NetHost
import NetHostMetrics
import ProxyModule

/// What `run` and `check` share: reading the config and deciding where modules come from.
struct Startup {
    let configPath: String
    let configDirectory: String
    let loaded: LoadedConfig
    /// `plugin_paths`, relative ones against the config's folder.
    let pluginPaths: [String]

    var configuration: Configuration { loaded.configuration }

    /// Reads the config; a syntax or runtime error ends the program with one line naming file and line.
    init(options: CommonOptions) throws {
        configPath = options.config
        let absolute = options.config.hasPrefix("/")
            ? options.config
            : FileManager.default.currentDirectoryPath + "/" + options.config
        configDirectory = (absolute as NSString).deletingLastPathComponent
        loaded = try ConfigLoader.load(path: options.config, registry: Self.registry)
        do {
            pluginPaths = try LuaModuleFinder.pluginPaths(in: loaded.configuration, relativeTo: configDirectory)
        } catch {
            let location = loaded.configuration.location(of: ModuleOptions.pluginPaths.name).map { "\($0): " } ?? ""
            throw StartupError("\(location)\(error)")
        }
    }

    /// What this config asks for that NetHost does not do, to say at start and
    /// in `nethost check`. Host sections load their modules as in Prosody (see
    /// `ModulePlan`); an external component has nothing NetHost could load.
    var compatibilityWarnings: [String] {
        configuration.sections.compactMap { section in
            guard case .component(module: nil) = section.kind else { return nil }
            return "\(section.location): Component \"\(section.name)\" has no module: it is an external XMPP "
                + "component (mod_component), which NetHost does not serve; nothing loads for it"
        }
    }

    static let nativeModules: [any NativeModule.Type] = BuiltinModules.all + ProxyModules.all + [MetricsModule.self]

    /// Every option NetHost knows: the core's, the native modules', the command's own.
    static let registry = OptionRegistry(nativeModules: nativeModules, adding: [ProcessOptions.group])

    /// The pidfile the config names, relative to its folder.
    var pidFilePath: String? {
        configuration.value(ProcessOptions.pidfile)?.stringValue.map(resolve)
    }

    /// Where this NetHost offers its listening sockets to a successor, and where
    /// `--takeover` asks for them: `control_socket`, else beside the pidfile, else
    /// in systemd's `RuntimeDirectory`; nil when none of these is set.
    func controlSocketPath(environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        if let explicit = configuration.value(ProcessOptions.controlSocket)?.stringValue, !explicit.isEmpty {
            return resolve(explicit)
        }
        if let pidFilePath {
            return (pidFilePath.hasSuffix(".pid") ? String(pidFilePath.dropLast(4)) : pidFilePath) + ".sock"
        }
        if let runtime = environment["RUNTIME_DIRECTORY"]?.split(separator: ":").first {
            return "\(runtime)/nethost.sock"
        }
        return nil
    }

    func resolve(_ path: String) -> String {
        path.hasPrefix("/") ? path : configDirectory + "/" + path
    }

    /// `options`: where modules read the config; `check` passes one that records the names asked for.
    /// `eventLoops`: `nethost run --event-loops`; nil for one per usable processor.
    func serverOptions(reading options: (any OptionSource)? = nil, eventLoops: Int? = nil) -> NetHostServer.Options {
        NetHostServer.Options(
            options: options ?? configuration,
            configDirectory: configDirectory,
            nativeModules: Self.nativeModules,
            pluginPaths: pluginPaths,
            shippedModules: ShippedModules.directory(),
            threads: eventLoops.map { max(1, $0) } ?? UsableProcessors.count
        )
    }

    /// The logging set-up from the `log` option and `--log-level`.
    func logging(levelOverride: String?) throws -> LoggingConfiguration {
        var logging = try LoggingConfiguration(options: configuration, baseDirectory: configDirectory)
        if let levelOverride {
            guard let level = LoggingConfiguration.level(named: levelOverride) else {
                throw StartupError("unknown log level '\(levelOverride)' (use debug, info, warn or error)")
            }
            logging.overrideConsoleLevel(minimum: level)
        }
        return logging
    }
}

struct StartupError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Where the Lua modules shipped with NetHost are: `NETHOST_MODULES`, else a
/// `modules` folder beside the binary or in the source tree it was built from
/// (so `swift run` finds them), else the installed location.
enum ShippedModules {
    static func directory() -> String? {
        let fileManager = FileManager.default
        if let explicit = ProcessInfo.processInfo.environment["NETHOST_MODULES"] {
            return explicit
        }
        var candidates: [String] = []
        var folder = (CommandLine.arguments[0] as NSString).deletingLastPathComponent
        if let executable = Bundle.main.executablePath {
            folder = ((executable as NSString).resolvingSymlinksInPath as NSString).deletingLastPathComponent
        }
        // Installed (make install): PREFIX/bin/nethost finds PREFIX/share/nethost/modules.
        candidates.append((folder as NSString).deletingLastPathComponent + "/share/nethost/modules")
        // .build/<triple>/debug/nethost -> up to four levels to the package root.
        for _ in 0 ..< 5 {
            candidates.append(folder + "/modules")
            folder = (folder as NSString).deletingLastPathComponent
        }
        candidates.append("/usr/local/share/nethost/modules")
        candidates.append("/usr/share/nethost/modules")
        return candidates.first { fileManager.fileExists(atPath: $0 + "/mod_demo_echo.lua") }
    }
}

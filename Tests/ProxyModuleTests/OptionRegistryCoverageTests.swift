import Foundation
import Logging
import NetHost
import ProxyModule
import Testing

/// The registry and the code agree: representative configs go through what `run`
/// and `check` do (read the log option and plugin paths, load the native and Lua
/// modules, plan the ports, read TLS settings, reload) with an option source that
/// records every name asked for. Each name asked for must be declared as read (a
/// name read without a declaration fails here), and each option declared as read
/// must have been asked for (a declaration nothing reads fails here, as
/// `local_interfaces` once did).
@Suite("Option registry coverage")
struct OptionRegistryCoverageTests {
    static let natives: [any NativeModule.Type] = BuiltinModules.all + ProxyModules.all
    static let registry = OptionRegistry(nativeModules: natives)

    /// Lua services that make the host read every kind of option: a private one
    /// (local_interfaces), a direct-TLS one (NAME_certificate), and one whose
    /// module.save fails, so that a reload reads force_module_reload. None calls
    /// module:get_option, so every name asked for is the host's own.
    static let plugins = [
        "admin": #"module:provides("net", { name = "admin", private = true, default_port = 0, listener = {} })"#,
        "secure": #"module:provides("net", { name = "secure", encryption = "ssl", default_port = 0, listener = {} })"#,
        "saver": #"function module.save() error("cannot save") end"#,
    ]

    static let config = """
        modules_enabled = { "net_proxy", "demo_whoami", "demo_echo_swift", "agent_check", "admin", "secure", "saver" }
        modules_disabled = { "nothing" }
        plugin_paths = { "plugins" }
        interfaces = { "127.0.0.1" }
        local_interfaces = { "127.0.0.1" }
        proxy_port_mappings = { [65000] = "demo_whoami" }
        proxy_trusted_proxies = { "127.0.0.1" }
        proxy_header_timeout = 4
        proxy_max_header_size = 1024
        agent_check_ports = { 0 }
        agent_check_state_file = "/run/nethost/agent-state"
        agent_check_drain_time = 2
        network_settings = { read_timeout = 60 }
        lua_memory_limit = 256 * 1024 * 1024
        lua_instruction_budget = 10000000
        log = "*console"
        tls_profile = "intermediate"
        VirtualHost "example.com"
            modules_enabled = { "admin" }
        Component "gateway.example.com" "demo_whoami"
            enabled = false
        """

    @Test("every option the code reads is declared, and every option declared as read is read")
    func registryMatchesTheCode() async throws {
        let folder = try TemporaryFolder()
        for (name, source) in Self.plugins {
            try folder.write("plugins/mod_\(name).lua", source)
        }
        let configuration = try ConfigLoader.load(source: Self.config, path: folder.path + "/prosody.cfg.lua", registry: Self.registry)
            .configuration
        let recording = RecordingOptions(configuration)

        // What Startup reads before the server exists.
        _ = try LoggingConfiguration(options: recording, baseDirectory: folder.path)
        let pluginPaths = try LuaModuleFinder.pluginPaths(in: recording, relativeTo: folder.path)

        let logger = Logger(label: "coverage") { _ in SwiftLogNoOpLogHandler() }
        let server = try await NetHostServer(
            NetHostServer.Options(
                options: recording, configDirectory: folder.path, nativeModules: Self.natives,
                pluginPaths: pluginPaths, threads: 1
            ),
            logger: logger
        )
        let loaded = await server.loadedModules
        #expect(Set(loaded) == ["net_proxy", "demo_whoami", "demo_echo_swift", "agent_check", "admin", "secure", "saver"])
        let services = Set(server.services.all.map(\.name))
        _ = ListenPlan(services: server.services.all, options: recording)
        _ = server.listenProblems()

        // A reload, with a changed module whose save fails.
        try folder.write("plugins/mod_saver.lua", Self.plugins["saver", default: ""] + "\n-- changed\n")
        do {
            try await server.reload(recording)
        } catch {
            await server.unload()
            throw error
        }
        await server.unload()

        let asked = recording.namesAsked
        for name in asked.sorted() {
            let declaration = Self.registry.declaration(covering: name, services: services)
            #expect(declaration != nil, "'\(name)' is read but no part of NetHost declares it")
            #expect(declaration.map { $0.use == .read } ?? true, "'\(name)' is read but declared as accepted, not used")
        }
        for group in Self.registry.groups {
            for option in group.options where option.use == .read {
                #expect(asked.contains(option.name), "'\(option.name)' is declared as read by \(group.title), but nothing asked for it")
            }
        }
        for option in Self.registry.serviceOptions {
            #expect(asked.contains { name in services.contains { name == $0 + option.suffix } },
                    "no service's \(option.displayName) was asked for")
        }
        #expect(Self.registry.duplicates.isEmpty)
    }
}

/// A folder under the temporary directory, removed when released.
final class TemporaryFolder {
    let path: String

    init() throws {
        var template = Array((FileManager.default.temporaryDirectory.path + "/nethost-options-XXXXXX").utf8CString)
        guard let created = mkdtemp(&template) else { throw CocoaError(.fileWriteUnknown) }
        path = String(cString: created)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }

    func write(_ relativePath: String, _ contents: String) throws {
        let full = path + "/" + relativePath
        try FileManager.default.createDirectory(
            atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true
        )
        try contents.write(toFile: full, atomically: true, encoding: .utf8)
    }
}

import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging

/// The option registry: what the core declares, how a name is looked up, which
/// options are global-only, and the listing `nethost check --options` prints.
@Suite("Option registry")
struct OptionRegistryTests {
    let registry = OptionRegistry.core

    @Test("options the core reads are declared as read, Prosody's leftovers as accepted",
          arguments: [
              ("modules_enabled", OptionDeclaration.Use.read), ("lua_memory_limit", .read), ("lua_instruction_budget", .read),
              ("ssl", .read), ("local_interfaces", .read), ("interfaces", .read), ("network_settings", .read),
              ("plugin_paths", .read), ("log", .read), ("force_module_reload", .read), ("enabled", .read),
              ("tls_profile", .read), ("certificates", .read), ("certificate", .read),
              ("daemonize", .acceptedNotUsed), ("data_path", .acceptedNotUsed), ("c2s_ports", .acceptedNotUsed),
          ])
    func declared(name: String, use: OptionDeclaration.Use) {
        #expect(registry.declaration(named: name)?.use == use)
    }

    @Test("a service's NAME_ports, NAME_interfaces, NAME_ssl and NAME_certificate are covered once a module provides NAME")
    func serviceOptions() {
        for suffix in ["_ports", "_interfaces", "_ssl", "_certificate"] {
            #expect(registry.declaration(covering: "demo_echo" + suffix, services: []) == nil)
            let covering = registry.declaration(covering: "demo_echo" + suffix, services: ["demo_echo"])
            #expect(covering?.name == "demo_echo" + suffix)
            #expect(covering?.use == .read)
        }
        #expect(registry.declaration(covering: "echo_port", services: ["demo_echo"]) == nil)
        // A declared name is its own, whatever services exist.
        #expect(registry.declaration(covering: "c2s_ports", services: [])?.use == .acceptedNotUsed)
    }

    @Test("global-only: declared global options and any *_ports or *_interfaces")
    func globalOnly() {
        for name in ["interfaces", "local_interfaces", "plugin_paths", "log", "network_settings", "daemonize",
                     "lua_memory_limit", "http_ports", "anything_interfaces"] {
            #expect(registry.isGlobalOnly(name), "\(name)")
        }
        for name in ["storage", "modules_enabled", "ssl", "certificate", "echo_ssl", "mystery"] {
            #expect(!registry.isGlobalOnly(name), "\(name)")
        }
    }

    @Test("no name is declared twice, and every declaration has its help")
    func wellFormed() {
        #expect(registry.duplicates.isEmpty)
        for group in registry.groups {
            for option in group.options {
                #expect(!option.help.isEmpty, "\(option.name)")
                #expect(option.name == option.name.lowercased() && !option.name.contains(" "), "\(option.name)")
            }
        }
    }

    @Test("a name declared twice is found: the first declaration stays")
    func duplicateIsReported() {
        let again = OptionDeclaration("ssl", .any, help: "again")
        let registry = OptionRegistry.core.adding([OptionRegistry.Group("twice", options: [again])])
        #expect(registry.duplicates == ["ssl"])
        #expect(registry.declaration(named: "ssl") == TLSConfigOptions.ssl)
    }

    @Test("native modules' declarations join the core's under the module's name")
    func nativeModules() {
        let registry = OptionRegistry(nativeModules: [DeclaringModule.self])
        #expect(registry.declaration(named: "declaring_limit") == DeclaringModule.limit)
        #expect(registry.groups.last?.title == "declaring")
        #expect(registry.declaration(named: "lua_memory_limit") != nil)
    }

    @Test("the listing names every option with its type, default, scope, what a reload does, and help")
    func listing() {
        let text = OptionListing(registry: registry).text
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines.contains(
            "  lua_memory_limit: integer; global; reload: needs a restart (set on the Lua state when it is made, at start)"
        ))
        #expect(lines.contains("      \(ModuleOptions.luaMemoryLimit.help)"))
        #expect(lines.contains("  <service>_ports: list of ports; default the service's default_port(s); global; reload: applied"))
        #expect(lines.contains { $0.hasPrefix("  ssl: table { certificate,") && $0.hasSuffix("; reload: new connections only") })
        #expect(lines.contains { $0.hasPrefix("  daemonize, run_as_root: any value; global; reload: not used") })
        for group in registry.groups {
            #expect(lines.contains(group.title))
            for option in group.options {
                #expect(text.contains(option.name), "\(option.name)")
            }
        }
    }
}

/// What a reload does with each option: said by every declaration, shown in both listings.
@Suite("Option registry: reload")
struct OptionReloadTests {
    /// Every option of the core and the built-in native modules says what a reload
    /// does with it (`Reload.unstated` is only the default of the declaration's init).
    /// Checked for the whole registry, net_proxy and the command's options included,
    /// by `DocumentationTests` (no "not stated" in docs/configuration.md).
    @Test("every declaration of the core and the built-in modules says what a reload does with it")
    func everyOptionSaysWhatAReloadDoes() {
        let registry = OptionRegistry(nativeModules: BuiltinModules.all)
        let options = registry.groups.flatMap(\.options)
        #expect(!options.isEmpty)
        for option in options {
            #expect(option.reload != .unstated, "\(option.name) does not say what a reload does with it")
            if option.use == .acceptedNotUsed { #expect(option.reload == .notUsed, "\(option.name)") }
        }
        for option in registry.serviceOptions {
            #expect(option.reload != .unstated, "\(option.displayName)")
            #expect(option.named("x").reload == option.reload, "\(option.displayName)")
        }
    }

    @Test("a declaration that says nothing compiles as before and is listed as not stated")
    func defaultIsUnstated() {
        let option = OptionDeclaration("quiet", .integer, help: "says nothing about reload")
        #expect(option.reload == .unstated)
        let listing = OptionListing(registry: OptionRegistry([OptionRegistry.Group("quiet", options: [option])]))
        #expect(listing.text.contains("  quiet: integer; reload: not stated"))
        #expect(listing.markdown.contains("**Type:** integer · **Section:** any · **Reload:** not stated"))
    }

    @Test("the Markdown page gives each option's reload line, with the reason of a restart")
    func markdown() {
        let markdown = OptionListing(registry: OptionRegistry.core).markdown
        let lines = markdown.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        func facts(of heading: String) -> String? {
            guard let index = lines.firstIndex(of: heading), index + 2 < lines.count else { return nil }
            return lines[index + 2]
        }
        #expect(facts(of: "### `plugin_paths`")?.hasSuffix(
            "**Reload:** needs a restart (the module search path is fixed at start; modules a reload loads are looked for in the old folders)"
        ) == true)
        #expect(facts(of: "### `modules_enabled`")?.hasSuffix("**Reload:** applied") == true)
        #expect(facts(of: "### `certificate`")?.hasSuffix("**Reload:** new connections only") == true)
        #expect(facts(of: "### `network_settings`")?.contains("**Reload:** new connections only, except: max_connections") == true)
        #expect(facts(of: "### `daemonize`, `run_as_root`")?.hasSuffix("**Reload:** not used") == true)
    }

    @Test("a changed start-only option is found and warned about; a changed reloadable one is not")
    func startOnlyChanges() {
        let registry = OptionRegistry.core
        let start = FixedOptions(global: ["lua_memory_limit": .integer(64 << 20), "plugin_paths": .strings("a"), "shutdown_timeout": .number(5)])
        let same = FixedOptions(global: ["lua_memory_limit": .integer(64 << 20), "plugin_paths": .strings("a"), "shutdown_timeout": .number(9)])
        let changed = FixedOptions(global: ["lua_memory_limit": .integer(128 << 20), "plugin_paths": .strings("a", "b"), "lua_instruction_budget": .integer(5)])
        #expect(registry.startOnlyChanges(from: start, to: same).isEmpty)
        #expect(registry.startOnlyChanges(from: start, to: changed).map(\.name) == ["plugin_paths", "lua_instruction_budget", "lua_memory_limit"])
        #expect(ModuleOptions.luaMemoryLimit.restartWarning?.hasPrefix("lua_memory_limit changed, but a reload does not apply it (") == true)
        #expect(ShutdownOptions.shutdownTimeout.restartWarning == nil)
    }
}

/// A native module that declares one option.
final class DeclaringModule: NativeModule {
    static let name = "declaring"
    static let limit = OptionDeclaration("declaring_limit", .integer, default: "3", help: "how many")
    static let declaredOptions = [limit]
    init(context: ModuleContext) throws {}
}

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

    @Test("the listing names every option with its type, default, scope and help")
    func listing() {
        let text = OptionListing(registry: registry).text
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines.contains("  lua_memory_limit: integer; global"))
        #expect(lines.contains("      \(ModuleOptions.luaMemoryLimit.help)"))
        #expect(lines.contains("  <service>_ports: list of ports; default the service's default_port(s); global"))
        #expect(lines.contains { $0.hasPrefix("  daemonize, run_as_root: any value; global") })
        for group in registry.groups {
            #expect(lines.contains(group.title))
            for option in group.options {
                #expect(text.contains(option.name), "\(option.name)")
            }
        }
    }
}

/// A native module that declares one option.
final class DeclaringModule: NativeModule {
    static let name = "declaring"
    static let limit = OptionDeclaration("declaring_limit", .integer, default: "3", help: "how many")
    static let declaredOptions = [limit]
    init(context: ModuleContext) throws {}
}

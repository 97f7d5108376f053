import NetHostConfig

/// Which modules the config asks for on which host, computed as Prosody's
/// `get_modules_for_host` does (core/modulemanager.lua), for the modules NetHost
/// hosts:
///
/// - The global section is a host of its own ("*"): its `modules_enabled` less its
///   `modules_disabled` load there once, whether or not the config has any
///   `VirtualHost`. (Prosody loads them per VirtualHost and nothing without one;
///   NetHost's modules serve process-wide ports, and most configs have no host.)
/// - A `VirtualHost` asks for the global modules plus its own `modules_enabled`,
///   less its own `modules_disabled`. A `Component "name" "module"` asks for its
///   module first, then its own `modules_enabled` less its `modules_disabled`; of
///   the global modules it inherits only those Prosody lets components inherit.
///   A host with `enabled = false` asks for nothing.
/// - A host's own options are those set in its section (Prosody compares the
///   host's table with the global one).
///
/// What a name on a host turns into (an add_host instance of a global module, or
/// a module of the host's own) is the module manager's to decide.
///
/// A set (`modules_enabled = { echo = true, whoami = true }`) loads in name order
/// (see `ConfigValue.stringList()`); a value that is not a list of names is
/// ignored and is one of ``problems``.
struct ModulePlan: Equatable {
    struct Host: Equatable {
        let name: String
        let isComponent: Bool
        /// In load order, without repeats.
        let modules: [String]
        /// The names the host's (or the global) `modules_disabled` lists.
        let disabled: Set<String>
    }

    let global: [String]
    let globalDisabled: Set<String>
    let hosts: [Host]
    /// `modules_enabled` or `modules_disabled` values that are not lists of names.
    private(set) var problems: [String] = []

    /// The global modules a component inherits, as in Prosody 0.12 (all XMPP
    /// modules: none of them is NetHost's, so in practice a component gets its own).
    static let componentInheritableModules: Set<String> = [
        "tls", "saslauth", "dialback", "iq", "s2s", "s2s_bidi", "smacks", "server_contact_info",
    ]

    init(options: any OptionSource) {
        var problems: [String] = []
        func names(_ option: OptionDeclaration, host: String? = nil) -> [String] {
            do {
                let value = if let host { options.hostValue(option, host: host) } else { options.value(option) }
                guard let value else { return [] }
                return try value.stringList()
            } catch {
                let section = host.map { " under \"\($0)\"" } ?? ""
                problems.append("\(option.name)\(section): \(error); it is ignored")
                return []
            }
        }
        let globalDisabled = Set(names(ModuleOptions.modulesDisabled))
        let global = Self.unique(names(ModuleOptions.modulesEnabled)).filter { !globalDisabled.contains($0) }
        self.global = global
        self.globalDisabled = globalDisabled
        self.hosts = options.definedHosts.filter(\.isEnabled).map { definition in
            let name = definition.name
            // A host's own values: nil (empty here) if it only inherits the global ones.
            let ownEnabled = names(ModuleOptions.modulesEnabled, host: name)
            let ownDisabled = Set(names(ModuleOptions.modulesDisabled, host: name))
            var modules: [String] = []
            let inherited: [String]
            switch definition.kind {
            case .virtualHost:
                inherited = global
            case .component(let module):
                if let module { modules.append(module) }
                inherited = global.filter(Self.componentInheritableModules.contains)
            }
            modules += (inherited + ownEnabled).filter { !ownDisabled.contains($0) }
            return Host(
                name: name, isComponent: definition.isComponent, modules: Self.unique(modules),
                disabled: globalDisabled.union(ownDisabled)
            )
        }
        self.problems = problems
    }

    /// The names `modules_disabled` lists for a host, the global ones included
    /// (what `module:get_option_inherited_set("modules_disabled")` gives there).
    func disabled(on host: String) -> Set<String> {
        hosts.first { $0.name == host }?.disabled ?? globalDisabled
    }

    private static func unique(_ names: [String]) -> [String] {
        var seen: Set<String> = []
        return names.filter { seen.insert($0).inserted }
    }
}

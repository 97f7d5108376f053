/// Where modules read their options: the loaded config, with host-to-global fallback.
public protocol OptionSource: Sendable {
    /// The option as set for `host`, else globally; nil if not set.
    func value(_ name: String, host: String?) -> ConfigValue?
    /// The hosts the config defines (`VirtualHost`, `Component`), in order.
    var definedHosts: [HostDefinition] { get }
    /// The option as set in the host's own section; nil if it only inherits the global one.
    func hostValue(_ name: String, host: String) -> ConfigValue?
}

extension OptionSource {
    public var definedHosts: [HostDefinition] { [] }

    /// Without sections to ask: the host's value if it differs from the global one.
    public func hostValue(_ name: String, host: String) -> ConfigValue? {
        let value = value(name, host: host)
        return value == self.value(name, host: nil) ? nil : value
    }
}

/// A host section of the config, as the module manager loads modules for it.
public struct HostDefinition: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        case virtualHost
        /// `Component "name" "module"`; `module` is nil for an external
        /// component (`Component "name"` alone), which has nothing to load in NetHost.
        case component(module: String?)
    }

    public var name: String
    public var kind: Kind
    /// Prosody's `enabled = false` under the host: it is not activated.
    public var isEnabled: Bool

    /// Prosody's `enabled`, read from a host section for `isEnabled`.
    public static let enabledOption = OptionDeclaration(
        "enabled", .boolean, default: "true",
        help: "under a VirtualHost or Component: false leaves the host out, and nothing loads for it",
        reload: .applied
    )

    public init(name: String, kind: Kind, isEnabled: Bool = true) {
        self.name = name
        self.kind = kind
        self.isEnabled = isEnabled
    }

    public var isComponent: Bool {
        if case .component = kind { return true }
        return false
    }
}

/// Options from a dictionary, for tests and for embedding.
public struct FixedOptions: OptionSource {
    public var global: [String: ConfigValue]
    public var hosts: [String: [String: ConfigValue]]

    public init(global: [String: ConfigValue] = [:], hosts: [String: [String: ConfigValue]] = [:]) {
        self.global = global
        self.hosts = hosts
    }

    public func value(_ name: String, host: String?) -> ConfigValue? {
        if let host, let value = hosts[host]?[name] { return value }
        return global[name]
    }

    public func hostValue(_ name: String, host: String) -> ConfigValue? {
        hosts[host]?[name]
    }

    /// The hosts in name order; one whose options set `component_module` (as
    /// Prosody's config does for `Component "name" "module"`) is a component.
    public var definedHosts: [HostDefinition] {
        hosts.keys.sorted().map { name in
            let options = hosts[name] ?? [:]
            let kind: HostDefinition.Kind = options["component_module"].map { .component(module: $0.stringValue) } ?? .virtualHost
            return HostDefinition(name: name, kind: kind, isEnabled: options[HostDefinition.enabledOption.name] != .boolean(false))
        }
    }
}

/// Modules read their options straight from the loaded config.
extension Configuration: OptionSource {
    public func hostValue(_ name: String, host: String) -> ConfigValue? {
        section(host)?.options[name]?.value
    }

    /// The `VirtualHost` and `Component` sections, in the order the config opened them.
    public var definedHosts: [HostDefinition] {
        sections.map { section in
            let kind: HostDefinition.Kind
            switch section.kind {
            case .virtualHost: kind = .virtualHost
            case .component(let module): kind = .component(module: module)
            }
            return HostDefinition(name: section.name, kind: kind, isEnabled: section.options[HostDefinition.enabledOption.name]?.value != .boolean(false))
        }
    }
}

/// Modules read their options straight from the loaded config.
extension Configuration: OptionSource {
    public var hostNames: [String] { sections.map(\.name) }

    public func ownValue(_ name: String, host: String) -> ConfigValue? { section(host)?.options[name]?.value }
}

/// Where modules read their options: the loaded config, with host-to-global fallback.
public protocol OptionSource: Sendable {
    /// The option as set for `host`, else globally; nil if not set.
    func value(_ name: String, host: String?) -> ConfigValue?
    /// The hosts the config names (`VirtualHost`, `Component`), in its order.
    var hostNames: [String] { get }
    /// The option as set in `host`'s own section, without the global fallback.
    func ownValue(_ name: String, host: String) -> ConfigValue?
}

extension OptionSource {
    public var hostNames: [String] { [] }
    public func ownValue(_ name: String, host: String) -> ConfigValue? { nil }
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

    public var hostNames: [String] { hosts.keys.sorted() }

    public func ownValue(_ name: String, host: String) -> ConfigValue? { hosts[host]?[name] }
}

extension OptionSource {
    /// A list of strings from a list, a set-shaped table (`{ x = true }`) or a single string.
    public func stringList(_ name: String, host: String? = nil) -> [String]? {
        switch value(name, host: host) {
        case .string(let single): return [single]
        case .table(let table):
            var items = table.array.compactMap(\.stringValue)
            for case (.string(let key), .boolean(true)) in table.map { items.append(key) }
            return items
        default: return nil
        }
    }
}

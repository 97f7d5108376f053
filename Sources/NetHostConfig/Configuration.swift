/// The settings a config file produced, detached from Lua.
///
/// Options live in the global section or in host sections (`VirtualHost`,
/// `Component`). Asking for an option on a host falls back to the global value,
/// as Prosody's `configmanager.get` does.
public struct Configuration: Sendable, Hashable {
    /// Options of the global section ("*").
    public var globalOptions: [String: ConfigOption]
    /// Host sections in the order the config first opened them.
    public var sections: [ConfigSection]

    public init(globalOptions: [String: ConfigOption] = [:], sections: [ConfigSection] = []) {
        self.globalOptions = globalOptions
        self.sections = sections
    }

    /// The section for a host name (compared as Prosody does: case-insensitively).
    public func section(_ host: String) -> ConfigSection? {
        let name = ConfigSection.normalizedName(host)
        return sections.first { $0.name == name }
    }

    /// The option with its location: the host's own, else the global one.
    /// `host: nil` asks the global section only.
    public func option(_ name: String, host: String? = nil) -> ConfigOption? {
        if let host, let own = section(host)?.options[name] {
            return own
        }
        return globalOptions[name]
    }

    /// The option's value: the host's own, else the global one.
    public func value(_ name: String, host: String? = nil) -> ConfigValue? {
        option(name, host: host)?.value
    }

    /// Where the option that `value(name, host:)` returns was set.
    public func location(of name: String, host: String? = nil) -> ConfigLocation? {
        option(name, host: host)?.location
    }

    /// The names of the options set in one section (the global one for `nil`),
    /// sorted; a host's list does not include the global options it inherits.
    public func optionNames(host: String? = nil) -> [String] {
        let options = host.map { section($0)?.options ?? [:] } ?? globalOptions
        return options.keys.sorted()
    }

    // MARK: Typed look-ups: the value if it has the type, else nil.
    // (`stringList` is the option source's, shared by every source.)

    public func string(_ name: String, host: String? = nil) -> String? {
        value(name, host: host)?.stringValue
    }

    /// An integer, also from a number without a fractional part.
    public func integer(_ name: String, host: String? = nil) -> Int? {
        value(name, host: host)?.integerValue
    }

    public func number(_ name: String, host: String? = nil) -> Double? {
        value(name, host: host)?.numberValue
    }

    public func boolean(_ name: String, host: String? = nil) -> Bool? {
        value(name, host: host)?.booleanValue
    }

    public func table(_ name: String, host: String? = nil) -> ConfigTable? {
        value(name, host: host)?.tableValue
    }
}

/// A `VirtualHost` (or `Host`) or `Component` section.
public struct ConfigSection: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        case virtualHost
        /// `Component "name" "module"`; `module` is nil for `Component "name"`
        /// alone (Prosody's external component).
        case component(module: String?)
    }

    /// The host name, lowercased.
    public var name: String
    public var kind: Kind
    /// Where the section was first opened.
    public var location: ConfigLocation
    public var options: [String: ConfigOption]

    public init(name: String, kind: Kind, location: ConfigLocation, options: [String: ConfigOption] = [:]) {
        self.name = Self.normalizedName(name)
        self.kind = kind
        self.location = location
        self.options = options
    }

    /// Host names are case-insensitive. Prosody applies nameprep; NetHost
    /// lowercases, which agrees with it for ASCII names.
    static func normalizedName(_ name: String) -> String { name.lowercased() }
}

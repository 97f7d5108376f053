/// Reading an option through its declaration, so its name is written once, where
/// it is declared (see `OptionRegistry`).
extension OptionSource {
    /// The option as set for `host`, else globally; nil if not set.
    public func value(_ option: OptionDeclaration, host: String? = nil) -> ConfigValue? {
        value(option.name, host: host)
    }

    /// The option as set in the host's own section; nil if it only inherits the global one.
    public func hostValue(_ option: OptionDeclaration, host: String) -> ConfigValue? {
        hostValue(option.name, host: host)
    }

    /// A list of names (see `ConfigValue.stringList()`: a set comes sorted); nil if not set.
    /// - Throws: ``OptionValueError`` naming the option when the value is not a list of strings.
    public func stringList(_ option: OptionDeclaration, host: String? = nil) throws(OptionValueError) -> [String]? {
        guard let value = value(option, host: host) else { return nil }
        do {
            return try value.stringList()
        } catch {
            throw OptionValueError(option: option.name, reason: error.description)
        }
    }

    /// A list of names by option name, nil if not set or not a list of strings;
    /// for tests and tools (NetHost's own code reads through declarations).
    public func stringList(_ name: String, host: String? = nil) -> [String]? {
        value(name, host: host)?.stringListValue
    }
}

/// An option whose value has the wrong shape: "interfaces: expected a list of strings, but item 2 is a number".
public struct OptionValueError: Error, Sendable, Hashable, CustomStringConvertible {
    public let option: String
    public let reason: String

    public init(option: String, reason: String) {
        self.option = option
        self.reason = reason
    }

    public var description: String { "\(option): \(reason)" }
}

/// The options a config sets, in every section, sorted by what NetHost does with
/// them; what `nethost check` prints.
public struct OptionUsageReport: Sendable, Hashable {
    /// An option nothing declares and nothing read, with the known name it is
    /// probably a typo of.
    public struct Unknown: Sendable, Hashable, CustomStringConvertible {
        public let name: String
        public let suggestion: String?

        public var description: String {
            suggestion.map { "\(name) (did you mean \($0)?)" } ?? name
        }
    }

    /// Declared as read by NetHost or a native module, a service option of a loaded
    /// service, or asked for by a module while it loaded (a Lua module's
    /// `module:get_option*`). Sorted.
    public var used: [String] = []
    /// Prosody options NetHost accepts without using them. Sorted.
    public var accepted: [String] = []
    /// Sorted by name.
    public var unknown: [Unknown] = []

    /// - Parameters:
    ///   - services: the services the loaded modules provide (for `NAME_ports` and the like).
    ///   - namesRead: every option name asked for while the modules loaded (see `RecordingOptions`).
    public init(configuration: Configuration, registry: OptionRegistry, services: Set<String> = [], namesRead: Set<String> = []) {
        var names = Set(configuration.globalOptions.keys)
        for section in configuration.sections {
            names.formUnion(section.options.keys)
        }
        let known = registry.knownNames(services: services).union(namesRead)
        for name in names.sorted() {
            switch registry.declaration(covering: name, services: services)?.use {
            case .read?:
                used.append(name)
            case _ where namesRead.contains(name):
                used.append(name)
            case .acceptedNotUsed?:
                accepted.append(name)
            case nil:
                unknown.append(Unknown(name: name, suggestion: OptionSuggestion.closest(to: name, among: known)))
            }
        }
    }
}

/// Every option NetHost knows: what the core reads, what each native module
/// declares, and the Prosody options it accepts without using. The config loader
/// asks it which options are global-only; `nethost check` asks it which options of
/// a config are used, accepted or unknown, and lists it with `--options`.
///
/// Each part of the host declares its options beside the code that reads them
/// (`ModuleOptions`, `ListenOptions`, `NetworkOptions`, `TLSConfigOptions`,
/// `LoggingOptions`; a native module's `declaredOptions`) and reads them through
/// those declarations. A test runs representative configs with an option source
/// that records every name asked for and checks each one is declared here.
public struct OptionRegistry: Sendable {
    /// The options one part of NetHost declares, listed together.
    public struct Group: Sendable {
        /// Who declares them: "modules", "TLS", a native module's name, ...
        public let title: String
        public let options: [OptionDeclaration]
        public let serviceOptions: [ServiceOptionDeclaration]

        public init(_ title: String, options: [OptionDeclaration], serviceOptions: [ServiceOptionDeclaration] = []) {
            self.title = title
            self.options = options
            self.serviceOptions = serviceOptions
        }
    }

    public private(set) var groups: [Group] = []
    private var byName: [String: OptionDeclaration] = [:]
    /// Names declared more than once; the first declaration is the one used. Kept empty by a test.
    public private(set) var duplicates: [String] = []

    public init(_ groups: [Group] = []) {
        for group in groups { add(group) }
    }

    public mutating func add(_ group: Group) {
        groups.append(group)
        for option in group.options {
            if byName[option.name] == nil {
                byName[option.name] = option
            } else {
                duplicates.append(option.name)
            }
        }
    }

    public func adding(_ groups: [Group]) -> OptionRegistry {
        var result = self
        for group in groups { result.add(group) }
        return result
    }

    /// The declaration of exactly this name (not a `NAME_ports` of a service).
    public func declaration(named name: String) -> OptionDeclaration? {
        byName[name]
    }

    /// Every `NAME_*` option a service has.
    public var serviceOptions: [ServiceOptionDeclaration] {
        groups.flatMap(\.serviceOptions)
    }

    /// The declaration that covers `name`: its own, else a service option of one of
    /// `services` (`echo_ports` when a module provides `echo`).
    public func declaration(covering name: String, services: Set<String>) -> OptionDeclaration? {
        if let own = byName[name] { return own }
        for option in serviceOptions {
            if let service = option.service(in: name), services.contains(service) {
                return option.named(service)
            }
        }
        return nil
    }

    /// Whether the option only means something in the global section: a declared
    /// global option, or any name ending like a global service option (`*_ports`,
    /// `*_interfaces`), since the services are not known while the config loads.
    public func isGlobalOnly(_ name: String) -> Bool {
        if let own = byName[name] { return own.scope == .global }
        return serviceOptions.contains { $0.scope == .global && $0.service(in: name) != nil }
    }

    /// The names a near miss is compared with: every declared name, and the
    /// service options of `services`.
    public func knownNames(services: Set<String>) -> Set<String> {
        var names = Set(byName.keys)
        for option in serviceOptions {
            for service in services { names.insert(service + option.suffix) }
        }
        return names
    }
}

extension OptionRegistry {
    /// The options read at start only (`Reload.restart`) whose value differs between
    /// the config NetHost started with and a reloaded one: what the reload leaves as
    /// it was, and warns about (`restartWarning`).
    public func startOnlyChanges(from start: any OptionSource, to reloaded: any OptionSource) -> [OptionDeclaration] {
        groups.flatMap(\.options).filter { option in
            guard case .restart = option.reload else { return false }
            return start.value(option) != reloaded.value(option)
        }
    }
}

extension OptionDeclaration {
    /// What a reload logs about a changed option it cannot apply; nil unless the
    /// option needs a restart.
    public var restartWarning: String? {
        guard case .restart(let reason) = reload else { return nil }
        return "\(name) changed, but a reload does not apply it (\(reason)): the value NetHost started with "
            + "stays in force until NetHost is restarted"
    }
}

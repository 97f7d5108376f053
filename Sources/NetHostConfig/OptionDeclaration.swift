/// One config option that the core or a module reads (or accepts from Prosody
/// configs without reading): its name, the shape of its value, its default, where
/// it may be set, and one line of help.
///
/// Code reads an option through its declaration (`options.value(ModuleOptions.luaMemoryLimit)`),
/// so the name is written once; the ``OptionRegistry`` holds every declaration, and
/// `nethost check` sorts a config's options with it.
public struct OptionDeclaration: Sendable, Hashable {
    /// Where the option means something.
    public enum Scope: Sendable, Hashable {
        /// Only in the global section; set under a host it has no effect, and the config loader warns.
        case global
        /// In the global section or under a host (a host's value wins there).
        case anySection
    }

    /// What NetHost does with the option.
    public enum Use: Sendable, Hashable {
        /// NetHost or one of its modules reads it.
        case read
        /// A Prosody option NetHost accepts without using it, so that an existing
        /// `prosody.cfg.lua` loads as it is and `nethost check` does not call it a typo.
        case acceptedNotUsed
    }

    /// What a reload (SIGHUP) does with a changed value, as the reload code does it
    /// (`NetHostServer.reload`, `nethost run`'s SIGHUP handler); `nethost check
    /// --options` and docs/configuration.md show it.
    public enum Reload: Sendable, Hashable, CustomStringConvertible {
        /// The declaration does not say (the listing shows "not stated"; a test
        /// keeps the registry free of it).
        case unstated
        /// A reload applies it: from then on NetHost acts on the new value.
        case applied
        /// A reload applies it to connections accepted after it; connections already
        /// open keep the value they started with.
        case newConnections
        /// As `newConnections`, but for what `note` says (a part that applies at
        /// once, or one that does not apply to what is already open).
        case newConnectionsExcept(String)
        /// Read at start only: a reload leaves the value of the start in force and
        /// warns, naming the option, that a restart is needed. `reason`: why, in words.
        case restart(reason: String)
        /// Not used by NetHost, so a reload has nothing to apply.
        case notUsed

        /// One line for the listings: "applied", "new connections only", ...
        public var summary: String {
            switch self {
            case .unstated: "not stated"
            case .applied: "applied"
            case .newConnections, .newConnectionsExcept: "new connections only"
            case .restart: "needs a restart"
            case .notUsed: "not used"
            }
        }

        /// The summary with its reason or exception: "needs a restart (set on the Lua state when it is made, at start)".
        public var description: String {
            switch self {
            case .restart(let reason): "\(summary) (\(reason))"
            case .newConnectionsExcept(let note): "\(summary), except: \(note)"
            default: summary
            }
        }
    }

    public let name: String
    public let type: OptionType
    /// The default as a config would write it (`5`, `{ "127.0.0.1", "::1" }`) or in
    /// words ("the mapped ports"); nil when an unset option means "none".
    public let defaultValue: String?
    public let scope: Scope
    public let use: Use
    /// One line, for `nethost check --options`.
    public let help: String
    /// What a reload does with a changed value.
    public let reload: Reload

    /// Without `reload`: `.notUsed` for an option NetHost only accepts, else
    /// `.unstated`; an option NetHost reads should say (a test fails on one that does not).
    public init(
        _ name: String, _ type: OptionType, default defaultValue: String? = nil,
        scope: Scope = .anySection, use: Use = .read, help: String, reload: Reload? = nil
    ) {
        self.name = name
        self.type = type
        self.defaultValue = defaultValue
        self.scope = scope
        self.use = use
        self.help = help
        self.reload = reload ?? (use == .acceptedNotUsed ? .notUsed : .unstated)
    }

    /// Prosody options NetHost accepts without using them; `help` says what they are for in Prosody.
    public static func accepted(_ names: [String], scope: Scope = .anySection, help: String) -> [OptionDeclaration] {
        names.map { OptionDeclaration($0, .any, scope: scope, use: .acceptedNotUsed, help: help, reload: .notUsed) }
    }
}

/// An option every network service has, named after the service: `NAME_ports`,
/// `NAME_interfaces`, `NAME_ssl`, `NAME_certificate`.
public struct ServiceOptionDeclaration: Sendable, Hashable {
    /// What follows the service's name: "_ports".
    public let suffix: String
    public let type: OptionType
    public let defaultValue: String?
    /// `.global` also makes the config loader warn about any `*SUFFIX` under a
    /// host (Prosody's `c2s_ports` as much as NetHost's own services).
    public let scope: OptionDeclaration.Scope
    public let help: String
    /// What a reload does with a changed value.
    public let reload: OptionDeclaration.Reload

    public init(
        suffix: String, _ type: OptionType, default defaultValue: String? = nil,
        scope: OptionDeclaration.Scope = .anySection, help: String, reload: OptionDeclaration.Reload = .unstated
    ) {
        self.suffix = suffix
        self.type = type
        self.defaultValue = defaultValue
        self.scope = scope
        self.help = help
        self.reload = reload
    }

    /// The option for one service: `named("echo")` is `echo_ports`.
    public func named(_ service: String) -> OptionDeclaration {
        OptionDeclaration(service + suffix, type, default: defaultValue, scope: scope, help: help, reload: reload)
    }

    /// How the listing shows it: `<service>_ports`.
    public var displayName: String { "<service>" + suffix }

    /// The service a name would belong to (`echo` for `echo_ports`), if the name has the suffix.
    func service(in name: String) -> String? {
        guard name.hasSuffix(suffix), name.count > suffix.count else { return nil }
        return String(name.dropLast(suffix.count))
    }
}

/// The shape of an option's value, as `nethost check --options` describes it.
public enum OptionType: Sendable, Hashable, CustomStringConvertible {
    case string
    case boolean
    case integer
    /// A number of seconds (fractions allowed).
    case seconds
    /// A string, a list of strings or a set (`{ a = true }`).
    case stringList
    /// A port number or a list of them.
    case portList
    /// A table of the given shape, or a value of several shapes, in words.
    case shaped(String)
    /// Not read by NetHost: any value.
    case any

    public var description: String {
        switch self {
        case .string: "string"
        case .boolean: "boolean"
        case .integer: "integer"
        case .seconds: "seconds"
        case .stringList: "list of strings"
        case .portList: "list of ports"
        case .shaped(let shape): shape
        case .any: "any value"
        }
    }
}

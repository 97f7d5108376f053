import NetHostConfig

/// Which Lua services run in one Lua state per event loop (`lua_per_loop_services`),
/// as HAProxy's `lua-load-per-thread` and OpenResty's workers do, instead of in
/// Prosody's one state. Read once at start: the number of states is fixed then.
public struct PerLoopLua: Sendable, Equatable {
    /// The service names; "*" stands for every Lua service.
    public let services: Set<String>

    public init(services: Set<String> = []) {
        self.services = services
    }

    /// None: Prosody's single state for every Lua service (the default).
    public static let none = PerLoopLua()

    /// Whether any service asked for it: then every event loop gets a Lua state.
    public var isEnabled: Bool { !services.isEmpty }

    /// Whether the service `name` is served by the state of the loop that accepted each connection.
    public func contains(_ name: String) -> Bool {
        services.contains(name) || services.contains("*")
    }

    /// The option as the config sets it; a value that is not a list of names is a problem, and then none.
    public init(options: any OptionSource, problems: inout [String]) {
        guard let value = options.value(Self.servicesOption) else {
            self.init()
            return
        }
        do {
            self.init(services: Set(try value.stringList()))
        } catch {
            problems.append("lua_per_loop_services: \(error); every Lua service stays in the one Lua state")
            self.init()
        }
    }

    public static let servicesOption = OptionDeclaration(
        "lua_per_loop_services", .stringList, default: "{} (every Lua service in one Lua state, as Prosody)", scope: .global,
        help: "Lua services served by one Lua state per event loop (each loads the Lua modules; connections stay on the "
            + "loop that accepted them); \"*\" for all",
        reload: .restart(reason: "the Lua states are made at start")
    )

    public static let sharedDictBytesOption = OptionDeclaration(
        "lua_shared_dict_max_bytes", .integer, default: "\(SharedDicts.defaultMaximumBytes)", scope: .global,
        help: "bytes of keys and values the shared dicts (require \"nethost.shared\") may hold together; "
            + "a write past it fails with \"no memory\"",
        reload: .restart(reason: "the shared dicts are made at start")
    )

    /// `lua_shared_dict_max_bytes`, or the default when unset or not a positive integer.
    public static func sharedDictBytes(in options: any OptionSource) -> Int {
        guard let bytes = options.value(sharedDictBytesOption)?.integerValue, bytes > 0 else {
            return SharedDicts.defaultMaximumBytes
        }
        return bytes
    }
}

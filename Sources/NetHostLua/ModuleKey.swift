/// One loaded module: a name on a host, "*" being the global host, as
/// Prosody's module map keys them (`modulemap[host][name]`).
public struct ModuleKey: Hashable, Sendable, CustomStringConvertible {
    public static let globalHost = "*"

    public let name: String
    public let host: String

    public init(_ name: String, host: String = ModuleKey.globalHost) {
        self.name = name
        self.host = host
    }

    public var isGlobal: Bool { host == Self.globalHost }

    /// "'name'" for a global module, "'name' on host 'host'" otherwise.
    public var description: String {
        isGlobal ? "'\(name)'" : "'\(name)' on host '\(host)'"
    }
}

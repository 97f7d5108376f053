/// What `nethost check` finds unsafe in a config that otherwise loads: an error
/// (check exits non-zero), or a warning (worth a look, check still passes).
public struct AuditFinding: Sendable, Hashable, CustomStringConvertible {
    public enum Severity: String, Sendable, Hashable {
        case error, warning
    }

    public let severity: Severity
    public let message: String

    public init(_ severity: Severity, _ message: String) {
        self.severity = severity
        self.message = message
    }

    public var description: String { message }
}

/// Where a service listens, as `nethost check` plans it.
public struct ListeningAddress: Sendable, Hashable {
    /// "*" or "::" for every interface, else an address.
    public let interface: String
    public let port: Int

    public init(interface: String, port: Int) {
        self.interface = interface
        self.port = port
    }

    /// Whether only this machine can connect: a loopback address, not every interface.
    public var isLoopbackOnly: Bool {
        if interface == "::1" || interface == "localhost" { return true }
        return interface.hasPrefix("127.")
    }
}

/// Where a listener accepts: an interface (`*` for every IPv4 address, `::` for
/// every IPv6 one, or an address) and a port (0: any free one).
public struct ListenAddress: Hashable, Sendable {
    public let interface: String
    public let port: Int

    public init(interface: String, port: Int) {
        self.interface = interface
        self.port = port
    }

    /// The clash rule, the one place it is written: two listeners need the same
    /// socket when they ask for the same port (not 0) on the same interface, or on
    /// a wildcard and an address of the same family. The kernel would refuse the
    /// second bind, or (with SO_REUSEPORT) share the port between two services.
    public func needsSameSocket(as other: ListenAddress) -> Bool {
        guard port == other.port, port != 0 else { return false }
        return interface == other.interface
            || (isWildcard && family == other.family)
            || (other.isWildcard && family == other.family)
    }

    private var isWildcard: Bool {
        interface == "*" || interface == "0.0.0.0" || interface == "::"
    }

    private var family: Int {
        interface.contains(":") ? 6 : 4
    }
}

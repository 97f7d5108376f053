import NetHostCore
import NIOCore

/// Which inherited listening socket serves which planned port: worked out from
/// addresses alone, so it can be tested without a socket.
///
/// A socket belongs to the planned entry at its address (the interface, `*` being
/// 0.0.0.0, and the port), whatever service the process before used it for: the
/// new config decides what a port serves. A port configured as 0 has no address to
/// match, so there the socket the same service had on that interface with port 0
/// is taken. Every matching socket goes to the entry (the process before may have
/// had one per event loop, each with its own queue). Sockets that match no entry
/// are the new config's closed ports.
struct ListenerInheritance: Equatable {
    private(set) var assigned: [ListenPlan.Entry: [InheritedListener]] = [:]
    private(set) var unmatched: [InheritedListener] = []

    init(entries: [ListenPlan.Entry], inherited: [InheritedListener]) {
        var left = inherited
        for entry in entries where assigned[entry] == nil {
            let (taken, rest) = left.reduce(into: ([InheritedListener](), [InheritedListener]())) { result, socket in
                if Self.matches(socket, entry) { result.0.append(socket) } else { result.1.append(socket) }
            }
            if !taken.isEmpty { assigned[entry] = taken }
            left = rest
        }
        unmatched = left
    }

    static func matches(_ socket: InheritedListener, _ entry: ListenPlan.Entry) -> Bool {
        guard sameHost(entry.interface, socket.host) else { return false }
        if entry.port != 0 { return socket.port == entry.port }
        guard let handed = socket.handed else { return false }
        return handed.port == 0 && handed.service == entry.service
    }

    /// Whether a configured interface names the address a socket is bound to
    /// ("::1" and "0:0::1" are the same address).
    static func sameHost(_ interface: String, _ host: String) -> Bool {
        let configured = interface == "*" ? "0.0.0.0" : interface
        if configured == host { return true }
        guard let first = try? SocketAddress(ipAddress: configured, port: 0),
              let second = try? SocketAddress(ipAddress: host, port: 0) else { return false }
        return first == second
    }
}

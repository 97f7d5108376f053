import LuaBridge
import NetHost
import ProxyProtocol

/// `conn:proxy_v2_header()`: the PROXY v2 header that announces this connection's
/// client (and the address it reached) to a backend, as bytes to write first on an
/// outgoing connection. A relay (`mod_tcp_relay`) sends it so the backend sees the
/// real client, whether the client came directly or through `net_proxy`.
enum ProxyV2HeaderLua {
    static var methods: [String: LuaFunction] {
        [
        "proxy_v2_header": { stack in
            let connection = try stack.checkUserdata(1, as: Connection.self, function: "proxy_v2_header")
            guard let bytes = header(for: connection.addresses, received: connection.proxyHeader) else {
                stack.pushNil()
                return 1
            }
            stack.push(bytes: bytes)
            return 1
        },
        ]
    }

    /// The header bytes; nil when the addresses are not IP addresses (nothing to announce).
    /// A connection that came with a PROXY header naming a client passes on that
    /// header's source and destination (where the client meant to go, not this
    /// host's socket), without its TLVs: they described the hop before this one.
    static func header(for connection: ConnectionAddresses, received: ProxyHeader?) -> [UInt8]? {
        if let received, received.command == .proxy {
            switch received.addresses {
            case .inet, .inet6:
                return try? ProxyHeaderEncoder.encode(ProxyHeader(
                    version: .v2, command: .proxy, transport: .stream, addresses: received.addresses
                ))
            case .unspecified, .unix:
                break
            }
        }
        let addresses: ProxyHeader.Addresses
        let (source, destination) = (connection.clientIP, connection.serverIP)
        let (sourcePort, destinationPort) = (UInt16(clamping: connection.clientPort), UInt16(clamping: connection.serverPort))
        if let source4 = IPv4Address(source), let destination4 = IPv4Address(destination) {
            addresses = .inet(source: .init(source4, port: sourcePort), destination: .init(destination4, port: destinationPort))
        } else if let source6 = ipv6(source), let destination6 = ipv6(destination) {
            // One end IPv4, the other IPv6 (a proxy between the two): both as IPv6, the IPv4 one mapped.
            addresses = .inet6(source: .init(source6, port: sourcePort), destination: .init(destination6, port: destinationPort))
        } else {
            return nil
        }
        return try? ProxyHeaderEncoder.encode(ProxyHeader(version: .v2, command: .proxy, transport: .stream, addresses: addresses))
    }

    /// An IPv6 address, or an IPv4 one as IPv4-mapped IPv6 (`::ffff:a.b.c.d`).
    private static func ipv6(_ text: String) -> IPv6Address? {
        if let address = IPv6Address(text) { return address }
        guard let address = IPv4Address(text) else { return nil }
        return IPv6Address(high: 0, low: 0x0000_FFFF_0000_0000 | UInt64(address.value))
    }
}

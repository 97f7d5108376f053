import NIOCore

/// Who is at each end of a connection, as a service sees it.
///
/// For a direct connection the client is the TCP peer. Behind `net_proxy` the
/// client is the one the PROXY header names and the TCP peer becomes the proxy.
public struct ConnectionAddresses: Sendable, Equatable {
    public var clientIP: String
    public var clientPort: Int
    public var serverIP: String
    public var serverPort: Int
    /// The proxy's own address, when the connection came through one.
    public var proxyIP: String?
    public var proxyPort: Int?

    public init(clientIP: String, clientPort: Int, serverIP: String, serverPort: Int, proxyIP: String? = nil, proxyPort: Int? = nil) {
        self.clientIP = clientIP
        self.clientPort = clientPort
        self.serverIP = serverIP
        self.serverPort = serverPort
        self.proxyIP = proxyIP
        self.proxyPort = proxyPort
    }

    /// The addresses of the socket itself.
    public init(peer: SocketAddress?, local: SocketAddress?) {
        self.init(
            clientIP: peer?.ipText ?? "",
            clientPort: peer?.port ?? 0,
            serverIP: local?.ipText ?? "",
            serverPort: local?.port ?? 0
        )
    }
}

extension SocketAddress {
    /// The IP address as text. IPv4 is written on the stack rather than through
    /// NIO's `ipAddress`, which allocates twice a call; a dotted quad fits inside
    /// the String, so this allocates nothing. Every connection needs its addresses
    /// as text, so this is on the accept path.
    public var ipText: String? {
        if case .v4(let v4) = self {
            return dottedQuad(UInt32(bigEndian: v4.address.sin_addr.s_addr))
        }
        return ipAddress
    }

    /// `ip:port`, or `[ip]:port` for IPv6, for logs.
    public var logText: String {
        let ip = ipText ?? "?"
        let port = self.port ?? 0
        return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }
}

/// `a.b.c.d`, built in a stack buffer (at most 15 bytes, so the String is small and inline).
private func dottedQuad(_ value: UInt32) -> String {
    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 15) { text in
        var count = 0
        for shift in stride(from: 24, through: 0, by: -8) {
            if shift != 24 {
                text[count] = UInt8(ascii: ".")
                count += 1
            }
            let octet = UInt8(truncatingIfNeeded: value >> UInt32(shift))
            if octet >= 100 {
                text[count] = UInt8(ascii: "0") + octet / 100
                count += 1
            }
            if octet >= 10 {
                text[count] = UInt8(ascii: "0") + octet / 10 % 10
                count += 1
            }
            text[count] = UInt8(ascii: "0") + octet % 10
            count += 1
        }
        return String(decoding: UnsafeBufferPointer(rebasing: text[..<count]), as: UTF8.self)
    }
}

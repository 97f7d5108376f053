import NetHost
import ProxyProtocol

/// The options `net_proxy` reads (`ProxyConfiguration`). Its service is named
/// "proxy", so `proxy_ports` and `proxy_interfaces` are also that service's
/// `NAME_ports` and `NAME_interfaces`. Ports are the whole server's: all global.
public enum ProxyOptions {
    public static let portMappings = OptionDeclaration(
        "proxy_port_mappings", .shaped(#"table { [port] = "service" }"#), scope: .global,
        help: "where each PROXY port's connections go, once their header is read",
        reload: .newConnectionsExcept("ports added or removed open or close at once")
    )
    public static let trustedProxies = OptionDeclaration(
        "proxy_trusted_proxies", .stringList, default: #"{ "127.0.0.1", "::1" }"#, scope: .global,
        help: "addresses and CIDR networks allowed to send PROXY headers; { } trusts every peer",
        reload: .newConnections
    )
    public static let ports = OptionDeclaration(
        "proxy_ports", .portList, default: "the mapped ports", scope: .global,
        help: "the PROXY ports to listen on, if not exactly the mapped ones",
        reload: .applied
    )
    public static let interfaces = OptionDeclaration(
        "proxy_interfaces", .stringList, default: "interfaces", scope: .global,
        help: "the addresses the PROXY ports listen on",
        reload: .applied
    )
    public static let headerTimeout = OptionDeclaration(
        "proxy_header_timeout", .seconds, default: "\(ProxyConfiguration.defaultHeaderTimeout)", scope: .global,
        help: "seconds a proxy has to send the whole header (above 0, at most 3600)",
        reload: .newConnections
    )
    public static let maxHeaderSize = OptionDeclaration(
        "proxy_max_header_size", .integer, default: "\(ProxyHeaderParser.defaultMaximumHeaderLength)", scope: .global,
        help: "the largest v2 header accepted, in bytes (232 to 65551)",
        reload: .newConnections
    )
    public static let maxPendingHeaders = OptionDeclaration(
        "proxy_max_pending_headers", .integer, default: "half the open-file limit (ulimit -n)", scope: .global,
        help: "connections of all addresses waiting for their PROXY header; past it the oldest waiting one is closed",
        reload: .applied
    )

    public static let all = [portMappings, trustedProxies, ports, interfaces, headerTimeout, maxHeaderSize, maxPendingHeaders]
}

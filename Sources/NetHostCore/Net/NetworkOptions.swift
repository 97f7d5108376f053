import NetHostConfig

/// The option `NetworkSettings` is read from.
public enum NetworkOptions {
    public static let networkSettings = OptionDeclaration(
        "network_settings", .shaped("table { read_timeout = 840, send_timeout = 180, ... }"),
        default: "Prosody's timeouts and sizes, plus NetHost's limits", scope: .global,
        help: "read_timeout, send_timeout, max_send_buffer_size, max_send_buffer_total, tcp_backlog, read_size, "
            + "tcp_nodelay, tcp_keepalive, max_connections, max_connections_per_ip, shed_idle_after, ssl_handshake_timeout "
            + "(alias handshake_timeout), connect_timeout (outgoing connections, 20 s); and, read by net_proxy, max_pending_headers_per_ip",
        reload: .newConnectionsExcept(
            "max_connections, max_connections_per_ip and shed_idle_after apply at once; tcp_backlog, tcp_nodelay, "
                + "tcp_keepalive and read_size are set when a port opens, so a port that stays open keeps the old ones (the reload warns)"
        )
    )

    public static let group = OptionRegistry.Group("network", options: [networkSettings])
}

/// The help text of each metric the host exports, by name: Prometheus wants one HELP
/// line per family, and swift-prometheus insists that every metric of a name has the
/// same one, so it is decided here, once, from the name alone.
enum MetricDescriptions {
    static let known: [String: String] = [
        "nethost_build_info": "NetHost's version, as a label; the value is always 1.",
        "nethost_connections_opened_total": "Connections handed to a service's listener, by service and local port.",
        "nethost_connections_closed_total": "Connections of a service that have closed, by service and local port.",
        "nethost_connections_open": "Connections of a service open now, by service and local port.",
        "nethost_service_received_bytes_total": "Bytes a service got from its peers (after TLS), by service.",
        "nethost_service_written_bytes_total": "Bytes a service wrote to its peers (before TLS, sent or still buffered), by service.",
        "nethost_proxy_connections_total": "Connections on a net_proxy port by how their header phase ended.",
        "nethost_proxy_rejections_total": "Connections on a net_proxy port closed for a reason: invalid headers by parse error, shed ones by budget.",
        "nethost_proxy_header_seconds": "Time from accept to a complete PROXY header on a net_proxy port.",
        "nethost_proxy_handoff_seconds": "Time from accept to the mapped service having the connection, on a net_proxy port.",
        "nethost_lua_memory_bytes": "Bytes the Lua state holds (all Lua modules share one state).",
        "nethost_lua_callback_errors_total": "Lua callbacks that raised an error, by module and callback.",
        "nethost_lua_budget_stops_total": "Lua callbacks stopped at lua_instruction_budget, by module.",
        "nethost_tls_handshake_timeouts_total": "TLS handshakes closed at ssl_handshake_timeout.",
        "nethost_tls_handshakes_refused_total": "TLS connections and STARTTLS upgrades closed by ssl_max_handshakes_per_second.",
        "nethost_send_buffer_total_shed_total": "Connections closed because their send buffer would have passed max_send_buffer_total.",
        "nethost_idle_shed_total": "Idle connections closed at max_connections to admit a new one.",
        "nethost_log_lines_dropped_total": "Log lines the log writer dropped (queue full or a sink failing).",
        "nethost_open_fds": "File descriptors the process has open.",
        "nethost_max_fds": "The process's open-file limit (RLIMIT_NOFILE).",
        "nethost_event_loop_lag_seconds": "How late the last check on each event loop ran (measured once a second).",
        "nethost_event_loop_lag_max_seconds": "The longest lag seen on each event loop since start.",
        "nethost_reloads_total": "Config reloads (SIGHUP) by result: applied or refused.",
        "nethost_metrics_scrapes_total": "Pages of metrics served.",
    ]

    static func help(for name: String) -> String {
        if let known = known[name] { return known }
        if name.hasPrefix("prosody_mod_") {
            return "A Lua module's metric (module:metric or module:measure), as Prosody names it."
        }
        return "A metric reported through swift-metrics."
    }
}

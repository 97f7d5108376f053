/// Common Prosody options NetHost accepts without using them, so that an existing
/// `prosody.cfg.lua` loads as it is and `nethost check` lists them as "accepted, not
/// used by NetHost" rather than as typos. (A Lua module that reads one of them makes
/// it used.)
public enum ProsodyOptions {
    public static let group = OptionRegistry.Group("accepted from Prosody, not used by NetHost", options:
        OptionDeclaration.accepted(["daemonize", "run_as_root"], scope: .global,
                                   help: "Prosody's process settings; NetHost runs in the foreground under its supervisor")
        + OptionDeclaration.accepted([
            "prosody_user", "prosody_group", "umask", "data_path", "network_backend", "use_libevent",
            "installer_plugin_path", "plugin_server",
        ], help: "Prosody's process, paths and plugin installer")
        + OptionDeclaration.accepted([
            "admins", "authentication", "authorization", "storage", "default_storage", "sql",
            "archive_expires_after", "default_archive_policy", "max_archive_query_results",
            "allow_registration", "registration_throttle_max", "registration_throttle_period",
        ], help: "Prosody's XMPP accounts and storage")
        + OptionDeclaration.accepted([
            "c2s_ssl", "s2s_ssl", "https_ssl", "https_certificate",
            "c2s_require_encryption", "s2s_require_encryption", "s2s_secure_auth",
            "s2s_insecure_domains", "s2s_secure_domains", "allow_unencrypted_plain_auth",
        ], help: "Prosody's TLS for XMPP and HTTP, whose services NetHost does not provide")
        + OptionDeclaration.accepted([
            "c2s_ports", "c2s_interfaces", "s2s_ports", "s2s_interfaces",
            "c2s_direct_tls_ports", "c2s_direct_tls_interfaces", "legacy_ssl_ports", "legacy_ssl_interfaces",
            "component_ports", "component_interfaces", "http_ports", "http_interfaces", "https_ports", "https_interfaces",
            "proxy65_ports",
        ], scope: .global, help: "Prosody's XMPP and HTTP listeners, which NetHost does not provide")
        + OptionDeclaration.accepted([
            "component_interface", "component_secret",
            "http_host", "http_external_url", "http_paths", "http_files_dir", "http_default_host",
            "proxy65_address",
            "consider_bosh_secure", "consider_websocket_secure", "cross_domain_bosh", "cross_domain_websocket",
        ], help: "Prosody's components, HTTP, BOSH and websocket settings")
        + OptionDeclaration.accepted([
            "limits", "contact_info", "server_contact_info", "disco_items",
            "welcome_message", "motd_text", "restrict_room_creation", "muc_room_default_public",
            "http_file_share_size_limit", "http_file_share_expires_after", "http_file_share_global_quota",
            "http_upload_file_size_limit", "turn_external_host", "turn_external_port", "turn_external_secret",
            "statistics", "statistics_interval", "openmetrics_allow_ips", "openmetrics_allow_cidr",
            "trusted_proxies", "upgrade_legacy_vcards",
        ], help: "Prosody's XMPP host and service settings")
    )
}

/// Which options NetHost reads, which it accepts from Prosody configs without
/// using them, and which belong in the global section only.
///
/// `nethost check` uses this to say "accepted, not used by NetHost: daemonize,
/// data_path" instead of leaving users to guess whether an option did anything.
public enum KnownOptions {
    public enum Usage: Sendable, Hashable {
        /// NetHost reads the option.
        case used
        /// A common Prosody option that NetHost accepts and ignores.
        case acceptedUnused
        /// Neither: maybe read by a module, maybe a typo.
        case unknown
    }

    /// Options NetHost itself reads (besides `NAME_ports` / `NAME_interfaces` / `NAME_ssl` / `NAME_certificate`
    /// for the services that modules provide).
    public static let usedByNetHost: Set<String> = [
        "modules_enabled", "modules_disabled", "plugin_paths", "enabled", "force_module_reload",
        "log", "pidfile",
        "interfaces", "local_interfaces",
        "network_settings",
        "proxy_port_mappings", "proxy_trusted_proxies",
        "proxy_ports", "proxy_interfaces", "proxy_header_timeout",
        "ssl", "certificates", "certificate", "tls_profile",
    ]

    /// Options that only mean something in the global section; set under a
    /// host they have no effect, and the loader warns.
    public static let globalOnlyNames: Set<String> = [
        "interfaces", "local_interfaces",
        "proxy_port_mappings", "proxy_trusted_proxies",
        "proxy_ports", "proxy_interfaces", "proxy_header_timeout",
        "plugin_paths", "log", "pidfile", "network_settings",
        "daemonize", "run_as_root",
    ]

    /// Whether an option belongs in the global section only: the names above
    /// and every `*_ports` and `*_interfaces` (ports are opened once, for the
    /// whole server).
    public static func isGlobalOnly(_ name: String) -> Bool {
        globalOnlyNames.contains(name) || name.hasSuffix("_ports") || name.hasSuffix("_interfaces")
    }

    /// Common Prosody options NetHost accepts without using them, so that an
    /// existing `prosody.cfg.lua` loads as it is.
    public static let acceptedFromProsody: Set<String> = [
        // Process and paths
        "daemonize", "run_as_root", "prosody_user", "prosody_group", "umask",
        "data_path", "network_backend", "use_libevent", "installer_plugin_path", "plugin_server",
        // Accounts and storage
        "admins", "authentication", "authorization", "storage", "default_storage", "sql",
        "archive_expires_after", "default_archive_policy", "max_archive_query_results",
        "allow_registration", "registration_throttle_max", "registration_throttle_period",
        // TLS
        "c2s_ssl", "s2s_ssl", "https_ssl", "https_certificate",
        "c2s_require_encryption", "s2s_require_encryption", "s2s_secure_auth",
        "s2s_insecure_domains", "s2s_secure_domains", "allow_unencrypted_plain_auth",
        // XMPP listeners NetHost does not provide
        "c2s_ports", "c2s_interfaces", "s2s_ports", "s2s_interfaces",
        "c2s_direct_tls_ports", "c2s_direct_tls_interfaces", "legacy_ssl_ports", "legacy_ssl_interfaces",
        "component_ports", "component_interfaces", "component_interface", "component_secret",
        "http_ports", "http_interfaces", "https_ports", "https_interfaces",
        "http_host", "http_external_url", "http_paths", "http_files_dir", "http_default_host",
        "proxy65_ports", "proxy65_address",
        "consider_bosh_secure", "consider_websocket_secure", "cross_domain_bosh", "cross_domain_websocket",
        // Host and service details
        "limits", "contact_info", "server_contact_info", "disco_items",
        "welcome_message", "motd_text", "restrict_room_creation", "muc_room_default_public",
        "http_file_share_size_limit", "http_file_share_expires_after", "http_file_share_global_quota",
        "http_upload_file_size_limit", "turn_external_host", "turn_external_port", "turn_external_secret",
        "statistics", "statistics_interval", "openmetrics_allow_ips", "openmetrics_allow_cidr",
        "trusted_proxies", "upgrade_legacy_vcards",
    ]

    /// How NetHost treats `name`, given the names of the services the loaded
    /// modules provide (for `NAME_ports`, `NAME_interfaces`, `NAME_ssl` and `NAME_certificate`).
    public static func usage(of name: String, services: Set<String> = []) -> Usage {
        if usedByNetHost.contains(name) { return .used }
        for suffix in ["_ports", "_interfaces", "_ssl", "_certificate"] where name.hasSuffix(suffix) {
            if services.contains(String(name.dropLast(suffix.count))) { return .used }
        }
        if acceptedFromProsody.contains(name) { return .acceptedUnused }
        return .unknown
    }

    /// The options of a configuration, in every section, that NetHost does not use.
    public struct UnusedOptions: Sendable, Hashable {
        /// Common Prosody options, accepted and ignored; sorted, without duplicates.
        public var accepted: [String]
        /// Options NetHost does not know; sorted, without duplicates.
        public var unknown: [String]
    }

    public static func unusedOptions(in configuration: Configuration, services: Set<String> = []) -> UnusedOptions {
        var names = Set(configuration.globalOptions.keys)
        for section in configuration.sections {
            names.formUnion(section.options.keys)
        }
        var result = UnusedOptions(accepted: [], unknown: [])
        for name in names.sorted() {
            switch usage(of: name, services: services) {
            case .used: break
            case .acceptedUnused: result.accepted.append(name)
            case .unknown: result.unknown.append(name)
            }
        }
        return result
    }
}

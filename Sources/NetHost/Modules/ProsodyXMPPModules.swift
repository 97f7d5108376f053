#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Prosody's own modules: the XMPP server's parts (`roster`, `saslauth`, `tls`,
/// `disco`, ...), which a config shared with Prosody, or moved from it, lists in
/// `modules_enabled`. NetHost hosts network services, not XMPP sessions, so it
/// does not load them; naming one is a note, not a failure.
///
/// A name is Prosody's when Prosody's module folder has it (Debian's `prosody`
/// package: /usr/lib/prosody/modules) or, without Prosody installed, when it is
/// one of the modules Prosody 0.12 ships.
struct ProsodyXMPPModules: Sendable {
    /// Where Prosody's packages put its modules.
    static let installedFolders = ["/usr/lib/prosody/modules", "/usr/local/lib/prosody/modules"]

    /// The modules Prosody 0.12 ships (its `plugins/` folder), for machines without it.
    static let prosody012: Set<String> = [
        "adhoc", "admin_adhoc", "admin_shell", "admin_socket", "admin_telnet", "announce", "auth_anonymous",
        "auth_insecure", "auth_internal_hashed", "auth_internal_plain", "auth_ldap", "authz_internal", "blocklist",
        "bookmarks", "bosh", "c2s", "carbons", "component", "cron", "csi", "csi_simple", "debug_sql", "dialback",
        "disco", "external_services", "groups", "http", "http_errors", "http_file_share", "http_files",
        "http_openmetrics", "invites", "invites_adhoc", "invites_register", "iq", "lastactivity", "legacyauth",
        "limits", "mam", "message", "mimicking", "motd", "muc", "muc_mam", "muc_unique", "net_multiplex", "offline",
        "pep", "pep_plus", "pep_simple", "ping", "posix", "presence", "private", "proxy65", "pubsub", "register",
        "register_ibr", "register_limits", "roster", "s2s", "s2s_auth_certs", "s2s_bidi", "saslauth",
        "scansion_record", "server_contact_info", "smacks", "stanza_debug", "storage_internal", "storage_memory",
        "storage_none", "storage_sql", "storage_xep0227", "time", "tls", "tokenauth", "tombstones", "turn_external",
        "unknown", "uptime", "user_account_management", "vcard", "vcard4", "vcard_legacy", "version",
        "watchregistrations", "websocket", "welcome", "windows",
    ]

    let folders: [String]

    init(folders: [String] = Self.installedFolders) {
        self.folders = folders
    }

    /// Whether `name` is one of Prosody's own modules (and so not one NetHost hosts).
    func contains(_ name: String) -> Bool {
        if Self.prosody012.contains(name) { return true }
        return folders.contains { folder in
            access("\(folder)/mod_\(name).lua", R_OK) == 0 || access("\(folder)/mod_\(name)/mod_\(name).lua", R_OK) == 0
        }
    }
}

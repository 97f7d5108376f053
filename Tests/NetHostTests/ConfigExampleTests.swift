import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging

extension ConfigTests {
    @Suite("A realistic prosody.cfg.lua")
    struct Example {
        /// Modelled on the example config Prosody ships.
        static let prosodyExample = """
            -- Prosody Configuration File
            --
            -- Information on configuring Prosody can be found on our
            -- website at https://prosody.im/doc/configure

            ---------- Server-wide settings ----------
            -- Settings in this section apply to the whole server and are the default settings
            -- for any virtual hosts

            -- This is a (by default, empty) list of accounts that are admins
            -- for the server.
            -- Example: admins = { "user1@example.com", "user2@example.net" }
            admins = { "admin@localhost" }

            -- This is the list of modules Prosody will load on startup.
            modules_enabled = {

                -- Generally required
                    "disco"; -- Service discovery
                    "roster"; -- Allow users to have a roster. Recommended ;)
                    "saslauth"; -- Authentication for clients and servers. Recommended if you want to log in.
                    "tls"; -- Add support for secure TLS on c2s/s2s connections

                -- Not essential, but recommended
                    "blocklist"; -- Allow users to block communications with other users
                    "bookmarks"; -- Synchronise the list of open rooms between clients
                    "carbons"; -- Keep multiple online clients in sync
                    --"csi_simple"; -- Simple but effective traffic optimizations for mobile devices

                -- Admin interfaces
                    "admin_adhoc"; -- Allows administration via an XMPP client that supports ad-hoc commands
                    --"admin_shell"; -- Allow secure administration via 'prosodyctl shell'

                -- NetHost
                    "net_proxy";
            }

            -- These modules are auto-loaded, but should you want
            -- to disable them then uncomment them here:
            modules_disabled = {
                -- "offline"; -- Store offline messages
                -- "c2s"; -- Handle client connections
            }

            -- Server-to-server authentication
            s2s_secure_auth = false

            -- Force clients to use encrypted connections?
            c2s_require_encryption = true

            -- Limit bandwidth
            limits = {
                c2s = {
                    rate = "10kb/s";
                };
                s2sin = {
                    rate = "30kb/s";
                };
            }

            pidfile = "/var/run/prosody/prosody.pid"

            authentication = "internal_hashed"

            archive_expires_after = "1w" -- Remove archived messages after 1 week

            -- Logging configuration
            log = {
                info = "/var/log/prosody/prosody.log"; -- Change 'info' to 'debug' for verbose logging
                error = "/var/log/prosody/prosody.err";
                -- "*syslog"; -- Uncomment this for logging to syslog
                -- "*console"; -- Log to the console, useful for debugging when running in the foreground
            }

            certificates = "certs"

            proxy_port_mappings = {
                [15222] = "c2s";
                [15269] = "s2s";
            }
            proxy_trusted_proxies = { "127.0.0.1", "::1" }

            ----------- Virtual hosts -----------
            VirtualHost "localhost"

            ------ Components ------
            ---Set up a MUC (multi-user chat) room server on conference.example.com:
            Component "conference.localhost" "muc"
                modules_enabled = { "muc_mam" }

            ---Set up a file sharing component
            --Component "share.example.com" "http_file_share"
            """

        @Test("it loads without errors or warnings, and every option reads back")
        func loads() throws {
            let folder = try ConfigFolder()
            try folder.write("prosody.cfg.lua", Self.prosodyExample)
            let loaded = try folder.load()
            #expect(loaded.diagnostics.isEmpty)
            let config = loaded.configuration
            #expect(config.stringList("admins") == ["admin@localhost"])
            #expect(config.stringList("modules_enabled") == [
                "disco", "roster", "saslauth", "tls", "blocklist", "bookmarks", "carbons", "admin_adhoc", "net_proxy",
            ])
            #expect(config.stringList("modules_disabled") == [])
            #expect(config.boolean("c2s_require_encryption") == true)
            #expect(config.boolean("s2s_secure_auth") == false)
            #expect(config.string("authentication") == "internal_hashed")
            #expect(config.string("certificates") == "certs")
            #expect(config.table("log")?["info"] == .string("/var/log/prosody/prosody.log"))
            #expect(config.table("limits")?["c2s"]?.tableValue?["rate"] == .string("10kb/s"))
            #expect(config.table("proxy_port_mappings")?.map == [.integer(15222): .string("c2s"), .integer(15269): .string("s2s")])
            #expect(config.sections.map(\.name) == ["localhost", "conference.localhost"])
            #expect(config.section("conference.localhost")?.kind == .component(module: "muc"))
            #expect(config.stringList("modules_enabled", host: "conference.localhost") == ["muc_mam"])
            #expect(config.stringList("modules_enabled", host: "localhost")?.count == 9)
            #expect(config.location(of: "admins")?.line == 13)

            // The core registry alone: net_proxy declares the proxy_* options, and the
            // nethost command pidfile (ProxyModuleTests and CommandLineCheckTests check them there).
            let usage = OptionUsageReport(configuration: config, registry: .core)
            #expect(usage.accepted == [
                "admins", "archive_expires_after", "authentication", "c2s_require_encryption",
                "limits", "s2s_secure_auth",
            ])
            #expect(usage.used == ["certificates", "log", "modules_disabled", "modules_enabled"])
            #expect(usage.unknown.map(\.name) == ["pidfile", "proxy_port_mappings", "proxy_trusted_proxies"])
        }
    }
}

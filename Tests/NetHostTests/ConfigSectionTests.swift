import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging

extension ConfigTests {
    @Suite("Sections and option values")
    struct Sections {
        @Test("plain assignments set options in the global section")
        func globalSection() throws {
            let loaded = try load("""
                admins = { "admin@example.com" }
                c2s_require_encryption = true
                log = "*console"
                """)
            let config = loaded.configuration
            #expect(config.value("admins") == list("admin@example.com"))
            #expect(config.boolean("c2s_require_encryption") == true)
            #expect(config.string("log") == "*console")
            #expect(config.sections.isEmpty)
            #expect(loaded.diagnostics.isEmpty)
        }

        @Test("VirtualHost, Host and Component open sections that hold the options after them, in order")
        func hostSections() throws {
            let config = try configuration("""
                pidfile = "/run/nethost.pid"
                VirtualHost "example.com"
                    authentication = "internal_hashed"
                Host "Second.Example.COM"
                    enabled = false
                Component "conference.example.com" "muc"
                    restrict_room_creation = true
                Component "gateway.example.com"
                    component_secret = "s3cret"
                """)
            #expect(config.sections.map(\.name) == [
                "example.com", "second.example.com", "conference.example.com", "gateway.example.com",
            ])
            #expect(config.sections.map(\.kind) == [
                .virtualHost, .virtualHost, .component(module: "muc"), .component(module: nil),
            ])
            #expect(config.globalOptions.keys.sorted() == ["pidfile"])
            #expect(config.section("example.com")?.options["authentication"]?.value == .string("internal_hashed"))
            #expect(config.section("SECOND.example.com")?.options["enabled"]?.value == .boolean(false))
            #expect(config.boolean("restrict_room_creation", host: "conference.example.com") == true)
            #expect(config.string("component_secret", host: "gateway.example.com") == "s3cret")
            #expect(config.section("example.com")?.location.line == 2)
        }

        @Test("the table forms set options in their section and return to the global one")
        func tableForms() throws {
            let config = try configuration("""
                VirtualHost "a.example" { authentication = "anonymous" }
                Component "c.example" "muc" { max_history_messages = 20 }
                Component "d.example" { component_secret = "x" }
                back_in_global = true
                """)
            #expect(config.string("authentication", host: "a.example") == "anonymous")
            #expect(config.integer("max_history_messages", host: "c.example") == 20)
            #expect(config.section("c.example")?.kind == .component(module: "muc"))
            #expect(config.section("d.example")?.kind == .component(module: nil))
            #expect(config.string("component_secret", host: "d.example") == "x")
            #expect(config.optionNames() == ["back_in_global"])
        }

        @Test("an option asked for on a host falls back to the global value")
        func hostFallback() throws {
            let config = try configuration("""
                storage = "internal"
                authentication = "internal_hashed"
                VirtualHost "example.com"
                    storage = "sql"
                """)
            #expect(config.string("storage", host: "example.com") == "sql")
            #expect(config.string("authentication", host: "example.com") == "internal_hashed")
            #expect(config.string("storage") == "internal")
            #expect(config.string("storage", host: "undefined.example") == "internal")
            #expect(config.location(of: "storage", host: "example.com")?.line == 4)
            #expect(config.location(of: "authentication", host: "example.com")?.line == 2)
            #expect(config.optionNames(host: "example.com") == ["storage"])
            #expect(config.value("nothing", host: "example.com") == nil)
        }

        @Test("tables keep their shape", arguments: [
            ("{ 5222 }", ConfigValue.table(ConfigTable(array: [.integer(5222)]))),
            ("{ 5222, 5223 }", .table(ConfigTable(array: [.integer(5222), .integer(5223)]))),
            ("{ [15222] = \"c2s\", [15269] = \"s2s\" }",
             .table(ConfigTable(map: [.integer(15222): .string("c2s"), .integer(15269): .string("s2s")]))),
            ("{ \"127.0.0.1\", \"10.0.0.0/8\"; \"::1\" }",
             .table(ConfigTable(array: [.string("127.0.0.1"), .string("10.0.0.0/8"), .string("::1")]))),
            ("{ roster = true, saslauth = true }",
             .table(ConfigTable(map: [.string("roster"): .boolean(true), .string("saslauth"): .boolean(true)]))),
            ("{ read_timeout = 840, max_send_buffer_size = 32 * 1024 * 1024, ratio = 0.5 }",
             .table(ConfigTable(map: [.string("read_timeout"): .integer(840),
                                      .string("max_send_buffer_size"): .integer(33_554_432),
                                      .string("ratio"): .number(0.5)]))),
            ("{ { levels = { min = \"info\" }, to = \"console\" }, { levels = { \"error\" }, to = \"file\" } }",
             .table(ConfigTable(array: [
                 .table(ConfigTable(map: [.string("levels"): .table(ConfigTable(map: [.string("min"): .string("info")])),
                                          .string("to"): .string("console")])),
                 .table(ConfigTable(map: [.string("levels"): .table(ConfigTable(array: [.string("error")])),
                                          .string("to"): .string("file")])),
             ]))),
            ("{}", .table(ConfigTable())),
            ("5222.0", .number(5222)),
        ])
        func tableShapes(source: String, expected: ConfigValue) throws {
            let config = try configuration("option = " + source)
            #expect(config.value("option") == expected)
        }

        @Test("ENV_NAME reads the environment variable NAME, nil when unset")
        func environmentVariables() throws {
            let config = try configuration("""
                data_path = ENV_NETHOST_DATA or "/var/lib/nethost"
                admins = { ENV_ADMIN }
                missing = ENV_NETHOST_NOT_SET == nil
                via_os = os.getenv("ADMIN")
                """, environment: ["NETHOST_DATA": "/srv/data", "ADMIN": "root@example.com"])
            #expect(config.string("data_path") == "/srv/data")
            #expect(config.value("admins") == list("root@example.com"))
            #expect(config.boolean("missing") == true)
            #expect(config.string("via_os") == "root@example.com")
        }

        @Test("an option can be read back and modified while the config runs")
        func readBack() throws {
            let config = try configuration("""
                modules_enabled = { "roster", "saslauth" }
                table.insert(modules_enabled, "net_proxy")
                c2s_ports = { 5222 }
                proxy_ports = { c2s_ports[1] + 10000 }
                greeting = "hello"
                shout = greeting:upper()
                VirtualHost "example.com"
                    modules_enabled = { "ping" }
                    table.insert(modules_enabled, "time")
                """)
            #expect(config.value("modules_enabled") == list("roster", "saslauth", "net_proxy"))
            #expect(config.value("modules_enabled", host: "example.com") == list("ping", "time"))
            #expect(config.value("proxy_ports") == .table(ConfigTable(array: [.integer(15222)])))
            #expect(config.string("shout") == "HELLO")
        }

        @Test("reading a name in a host section sees that section's options, then the safe globals")
        func readBackIsPerSection() throws {
            let config = try configuration("""
                greeting = "global"
                VirtualHost "example.com"
                    seen = greeting == nil
                    library = type(string.format)
                """)
            #expect(config.boolean("seen", host: "example.com") == true)
            #expect(config.string("library", host: "example.com") == "function")
        }

        @Test("assigning nil removes an option; locals are not options")
        func nilAndLocals() throws {
            let config = try configuration("""
                local default_modules = { "ping" }
                modules_enabled = default_modules
                removed = "soon"
                removed = nil
                """)
            #expect(config.optionNames() == ["modules_enabled"])
            #expect(config.value("modules_enabled") == list("ping"))
        }

        @Test("every option records the file and line that set it")
        func locations() throws {
            let folder = try ConfigFolder()
            try folder.write("prosody.cfg.lua", """
                -- comment
                pidfile = "/run/nethost.pid"

                VirtualHost "example.com"
                    storage = "sql"
                """)
            let config = try folder.load().configuration
            #expect(config.location(of: "pidfile") == ConfigLocation(file: folder.file("prosody.cfg.lua"), line: 2))
            #expect(config.location(of: "storage", host: "example.com")?.line == 5)
            #expect(config.location(of: "storage") == nil)
        }
    }
}

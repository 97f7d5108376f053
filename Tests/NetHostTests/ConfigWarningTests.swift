import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging

extension ConfigTests {
    @Suite("Warnings")
    struct Warnings {
        @Test("an option set twice in one section is a warning naming both lines")
        func duplicateOption() throws {
            let loaded = try load("""
                c2s_require_encryption = true
                admins = {}

                c2s_require_encryption = false
                """)
            #expect(loaded.diagnostics.map(\.description) == [
                "prosody.cfg.lua:4: option 'c2s_require_encryption' is set twice in the global section (first at prosody.cfg.lua:1); the later value wins",
            ])
            #expect(loaded.diagnostics.first?.line == 4)
            #expect(loaded.configuration.boolean("c2s_require_encryption") == false)
        }

        @Test("one option in different sections is not a duplicate")
        func sameOptionOtherSections() throws {
            let loaded = try load("""
                storage = "internal"
                VirtualHost "a.example"
                    storage = "sql"
                VirtualHost "b.example"
                    storage = "memory"
                """)
            #expect(loaded.diagnostics.isEmpty)
        }

        @Test("a duplicate inside a host section names the host")
        func duplicateInHost() throws {
            let loaded = try load("VirtualHost \"a.example\"\nstorage = \"sql\"\nstorage = \"memory\"\n")
            #expect(loaded.diagnostics.map(\.description) == [
                "prosody.cfg.lua:3: option 'storage' is set twice in VirtualHost \"a.example\" (first at prosody.cfg.lua:2); the later value wins",
            ])
        }

        // net_proxy's options (proxy_*) and pidfile (the nethost command's) are declared
        // outside this target: ProxyOptionDeclarationTests and CommandLineCheckTests check them.
        @Test("a global-only option under a host is a warning", arguments: [
            "c2s_ports = { 5222 }", "http_interfaces = { \"*\" }", "interfaces = { \"::\" }",
            "local_interfaces = { \"::1\" }", "demo_echo_ports = { 7 }",
            "plugin_paths = { \"plugins\" }", "log = \"*console\"",
            "network_settings = { read_timeout = 10 }", "daemonize = false",
            "run_as_root = true", "lua_memory_limit = 1000000", "tls_profile = \"modern\"",
        ])
        func globalOnlyUnderHost(assignment: String) throws {
            let name = String(assignment.prefix { $0 != " " })
            let underHost = try load("VirtualHost \"example.com\"\n" + assignment + "\n")
            #expect(underHost.diagnostics.map(\.description) == [
                "prosody.cfg.lua:2: option '\(name)' only works in the global section and has no effect under VirtualHost \"example.com\"; move it above the first VirtualHost or Component",
            ])
            let global = try load(assignment + "\n")
            #expect(global.diagnostics.isEmpty)
        }

        @Test("a VirtualHost opened again is a note, not a warning (Prosody allows it), and its sections are merged")
        func hostTwice() throws {
            let loaded = try load("""
                VirtualHost "example.com"
                    storage = "sql"
                VirtualHost "Example.com"
                    authentication = "internal_hashed"
                """)
            #expect(loaded.diagnostics.map(\.description) == [
                "prosody.cfg.lua:3: VirtualHost \"example.com\" is opened again (first at prosody.cfg.lua:1); its options are added to it, as in Prosody",
            ])
            #expect(loaded.diagnostics.map(\.severity) == [.note])
            #expect(loaded.configuration.sections.count == 1)
            #expect(loaded.configuration.optionNames(host: "example.com") == ["authentication", "storage"])
        }

        @Test("warnings in included files name the included file")
        func warningInInclude() throws {
            let folder = try ConfigFolder()
            try folder.write("prosody.cfg.lua", "storage = \"internal\"\nInclude \"more.cfg.lua\"\n")
            try folder.write("more.cfg.lua", "\nstorage = \"sql\"\n")
            let loaded = try folder.load()
            #expect(loaded.diagnostics.count == 1)
            #expect(loaded.diagnostics.first?.location == ConfigLocation(file: folder.file("more.cfg.lua"), line: 2))
            #expect(loaded.diagnostics.first?.message.contains("first at \(folder.file("prosody.cfg.lua")):1") == true)
        }
    }
}

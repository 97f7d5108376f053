import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging

extension ConfigTests {
    @Suite("Include")
    struct Include {
        @Test("a relative Include is read from the including file's folder into the same settings")
        func relative() throws {
            let folder = try ConfigFolder()
            try folder.write("prosody.cfg.lua", """
                admins = { "admin@example.com" }
                Include "extra.cfg.lua"
                after = true
                """)
            try folder.write("extra.cfg.lua", """
                pidfile = "/run/nethost.pid"
                """)
            let config = try folder.load().configuration
            #expect(config.string("pidfile") == "/run/nethost.pid")
            #expect(config.boolean("after") == true)
            #expect(config.location(of: "pidfile") == ConfigLocation(file: folder.file("extra.cfg.lua"), line: 1))
        }

        @Test("an Include in a subfolder resolves its own Includes from that subfolder")
        func subfolder() throws {
            let folder = try ConfigFolder()
            try folder.write("prosody.cfg.lua", "Include \"conf.d/hosts.cfg.lua\"\n")
            try folder.write("conf.d/hosts.cfg.lua", """
                VirtualHost "example.com"
                Include "host-options.cfg.lua"
                """)
            try folder.write("conf.d/host-options.cfg.lua", "storage = \"sql\"\n")
            let config = try folder.load().configuration
            #expect(config.string("storage", host: "example.com") == "sql")
            #expect(config.location(of: "storage", host: "example.com")?.file == folder.file("conf.d/host-options.cfg.lua"))
        }

        @Test("a glob includes every matching file in sorted order, and nothing else")
        func glob() throws {
            let folder = try ConfigFolder()
            try folder.write("prosody.cfg.lua", """
                order = {}
                Include "conf.d/*.cfg.lua"
                """)
            for name in ["20-b", "10-a", "30-c"] {
                try folder.write("conf.d/\(name).cfg.lua", "table.insert(order, \"\(name)\")\n")
            }
            try folder.write("conf.d/README.txt", "not lua at all {")
            try folder.write("conf.d/.hidden.cfg.lua", "table.insert(order, \"hidden\")\n")
            let config = try folder.load().configuration
            #expect(config.value("order") == list("10-a", "20-b", "30-c"))
        }

        @Test("a glob that matches nothing includes nothing")
        func emptyGlob() throws {
            let folder = try ConfigFolder()
            try folder.write("prosody.cfg.lua", "Include \"conf.d/*.cfg.lua\"\nloaded = true\n")
            #expect(try folder.load().configuration.boolean("loaded") == true)
        }

        @Test("an included file starts in the global section, as in Prosody, and the includer's section resumes after it")
        func includedFilesStartGlobal() throws {
            let folder = try ConfigFolder()
            try folder.write("prosody.cfg.lua", """
                VirtualHost "a.example"
                Include "global-options.cfg.lua"
                Include "other-host.cfg.lua"
                still_a = true
                """)
            try folder.write("global-options.cfg.lua", "storage = \"sql\"\n")
            try folder.write("other-host.cfg.lua", "VirtualHost \"b.example\"\nstorage = \"memory\"\n")
            let config = try folder.load().configuration
            #expect(config.string("storage") == "sql")
            #expect(config.location(of: "storage")?.file == folder.file("global-options.cfg.lua"))
            #expect(config.string("storage", host: "b.example") == "memory")
            #expect(config.boolean("still_a", host: "a.example") == true)
            #expect(config.value("still_a", host: "b.example") == nil)
        }

        @Test("Debian's layout: conf.d/*.cfg.lua included after VirtualHost \"localhost\" sets global options")
        func debianLayout() throws {
            let folder = try ConfigFolder()
            try folder.write("prosody.cfg.lua", """
                modules_enabled = { "net_proxy" }
                VirtualHost "localhost"
                Include "conf.d/*.cfg.lua"
                """)
            try folder.write("conf.d/proxy.cfg.lua", "proxy_port_mappings = { [15222] = \"c2s\" }\n")
            let config = try folder.load().configuration
            #expect(config.value("proxy_port_mappings") == .table(ConfigTable(map: [.integer(15222): .string("c2s")])))
            #expect(config.value("proxy_port_mappings", host: "localhost") == config.value("proxy_port_mappings"))
        }

        @Test("a missing file is an error at the Include line naming the file")
        func missing() throws {
            let folder = try ConfigFolder()
            try folder.write("prosody.cfg.lua", "admins = {}\nInclude \"missing.cfg.lua\"\n")
            let error = try #require(throws: ConfigError.self) { try folder.load() }
            #expect(error.file == folder.file("prosody.cfg.lua"))
            #expect(error.line == 2)
            #expect(error.message == "cannot read included file \"\(folder.file("missing.cfg.lua"))\": No such file or directory")
        }

        @Test("an Include cycle is an error naming the chain")
        func cycle() throws {
            let folder = try ConfigFolder()
            try folder.write("prosody.cfg.lua", "Include \"a.cfg.lua\"\n")
            try folder.write("a.cfg.lua", "x = 1\nInclude \"b.cfg.lua\"\n")
            try folder.write("b.cfg.lua", "Include \"a.cfg.lua\"\n")
            let error = try #require(throws: ConfigError.self) { try folder.load() }
            #expect(error.file == folder.file("b.cfg.lua"))
            #expect(error.line == 1)
            #expect(error.message == "Include cycle: \(folder.file("a.cfg.lua")) -> \(folder.file("b.cfg.lua")) -> \(folder.file("a.cfg.lua"))")
        }

        @Test("a file including itself is a cycle too")
        func selfInclude() throws {
            let folder = try ConfigFolder()
            try folder.write("prosody.cfg.lua", "Include \"prosody.cfg.lua\"\n")
            let error = try #require(throws: ConfigError.self) { try folder.load() }
            #expect(error.message.hasPrefix("Include cycle:"))
            #expect(error.line == 1)
        }

        @Test("including the same file twice is allowed (and its options are set twice)")
        func twice() throws {
            let folder = try ConfigFolder()
            try folder.write("prosody.cfg.lua", "Include \"a.cfg.lua\"\nInclude \"a.cfg.lua\"\n")
            try folder.write("a.cfg.lua", "x = 1\n")
            let loaded = try folder.load()
            #expect(loaded.configuration.integer("x") == 1)
            #expect(loaded.diagnostics.count == 1)
        }
    }
}

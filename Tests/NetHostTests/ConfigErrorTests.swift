import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging

extension ConfigTests {
    @Suite("Errors")
    struct Errors {
        @Test("a syntax error names the file and line")
        func syntax() throws {
            let error = try loadError("""
                admins = {}
                -- a comment
                modules_enabled = { "a" "b" }
                """)
            #expect(error.code == .syntax)
            #expect(error.file == "prosody.cfg.lua")
            #expect(error.line == 3)
            #expect(error.description.hasPrefix("prosody.cfg.lua:3: "))
            #expect(error.description == "prosody.cfg.lua:3: \(error.message)")
            #expect(error.message.contains("'}' expected"))
        }

        @Test("a runtime error names the line of the offending statement")
        func runtime() throws {
            let error = try loadError("""
                admins = {}

                pidfile = nil .. "x"
                """)
            #expect(error.code == .runtime)
            #expect(error.description.hasPrefix("prosody.cfg.lua:3: attempt to concatenate a nil value"))
        }

        @Test("an error raised with error() keeps the config's position")
        func raised() throws {
            let first = try loadError("x = 1\nerror(\"no good\")\n")
            #expect(first.description == "prosody.cfg.lua:2: no good")
            let second = try loadError("x = 1\n\nerror(\"no position\", 0)\n")
            #expect(second.description == "prosody.cfg.lua:3: no position")
        }

        @Test("a runtime error in an included file names that file and line")
        func includedRuntime() throws {
            let folder = try ConfigFolder()
            try folder.write("prosody.cfg.lua", "admins = {}\nInclude \"conf.d/broken.cfg.lua\"\n")
            try folder.write("conf.d/broken.cfg.lua", "x = 1\ny = x.field.other\n")
            let error = try #require(throws: ConfigError.self) { try folder.load() }
            #expect(error.code == .runtime)
            #expect(error.file == folder.file("conf.d/broken.cfg.lua"))
            #expect(error.line == 2)
            #expect(error.description.hasPrefix(folder.file("conf.d/broken.cfg.lua") + ":2: attempt to index"))
        }

        @Test("a syntax error in an included file is a syntax error in that file")
        func includedSyntax() throws {
            let folder = try ConfigFolder()
            try folder.write("prosody.cfg.lua", "Include \"bad.cfg.lua\"\n")
            try folder.write("bad.cfg.lua", "\n\nx = = 1\n")
            let error = try #require(throws: ConfigError.self) { try folder.load() }
            #expect(error.code == .syntax)
            #expect(error.file == folder.file("bad.cfg.lua"))
            #expect(error.line == 3)
        }

        @Test("files with long paths are still named in full")
        func longPath() throws {
            let folder = try ConfigFolder()
            let deep = "a-rather-long-folder-name/another-rather-long-folder-name/and-one-more-level"
            try folder.write("\(deep)/prosody.cfg.lua", "x = 1\nInclude \"inc.cfg.lua\"\n")
            try folder.write("\(deep)/inc.cfg.lua", "\ny = nil + 1\n")
            let error = try #require(throws: ConfigError.self) { try folder.load("\(deep)/prosody.cfg.lua") }
            #expect(error.file == folder.file("\(deep)/inc.cfg.lua"))
            #expect(error.line == 2)
            #expect(error.message.hasPrefix("attempt to perform arithmetic on a nil value"))
        }

        @Test("a value that cannot be an option is an error at its line", arguments: [
            ("handler = function() end", "option 'handler': a function value cannot be a config option"),
            ("loop = {}\nloop.self = loop\nagain = loop", "option 'again': tables nested more than 32 deep (a cycle?)"),
            ("function helper() end", "option 'helper': a function value cannot be a config option"),
            ("VirtualHost \"x\" { callback = print }", "option 'callback': a function value cannot be a config option"),
        ])
        func invalidValue(source: String, message: String) throws {
            let error = try loadError("admins = {}\n" + source)
            #expect(error.code == .invalidValue)
            #expect(error.line == source.split(separator: "\n").count + 1)
            #expect(error.message == message)
        }

        @Test("a function put into an option table later is reported at the option's line")
        func invalidValueLater() throws {
            let error = try loadError("modules_enabled = {}\n\ntable.insert(modules_enabled, print)\n")
            #expect(error.code == .invalidValue)
            #expect(error.line == 1)
        }

        @Test("directives cannot be overwritten, and need their arguments")
        func directiveMisuse() throws {
            #expect(try loadError("x = 1\nVirtualHost = 2\n").description
                == "prosody.cfg.lua:2: 'VirtualHost' is a config directive and cannot be set as an option")
            #expect(try loadError("VirtualHost()\n").description
                == "prosody.cfg.lua:1: VirtualHost needs a host name (a string), got no value")
            #expect(try loadError("\nInclude()\n").line == 2)
        }

        @Test("a host name used for both a VirtualHost and a Component is an error, as in Prosody")
        func hostComponentClash() throws {
            let error = try loadError("VirtualHost \"example.com\"\nComponent \"example.com\" \"muc\"\n")
            #expect(error.line == 2)
            #expect(error.message.hasPrefix("Component \"example.com\" clashes with the VirtualHost \"example.com\" defined at prosody.cfg.lua:1"))
        }

        @Test("a missing config file is an error naming it")
        func unreadable() throws {
            let folder = try ConfigFolder()
            let error = try #require(throws: ConfigError.self) { try folder.load("nope.cfg.lua") }
            #expect(error.code == .unreadable)
            #expect(error.description == "\(folder.file("nope.cfg.lua")): cannot read the config file: No such file or directory")
        }

        @Test("an endless loop ends with an error instead of hanging")
        func endlessLoop() throws {
            let error = try loadError("x = 1\nwhile true do end\n")
            #expect(error.message == "the config ran too long (an endless loop?)")
            #expect(error.line == 2)
        }
    }
}

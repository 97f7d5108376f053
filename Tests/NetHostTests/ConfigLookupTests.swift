import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging

extension ConfigTests {
    @Suite("Typed look-ups")
    struct Lookups {
        @Test("typed look-ups return the value when it has the type, else nil")
        func typed() throws {
            let config = try configuration("""
                name = "nethost"
                port = 5222
                port_as_float = 5222.0
                ratio = 0.25
                enabled = true
                settings = { read_timeout = 840 }
                """)
            #expect(config.string("name") == "nethost")
            #expect(config.string("port") == nil)
            #expect(config.integer("port") == 5222)
            #expect(config.integer("port_as_float") == 5222)
            #expect(config.integer("ratio") == nil)
            #expect(config.number("ratio") == 0.25)
            #expect(config.number("port") == 5222)
            #expect(config.boolean("enabled") == true)
            #expect(config.boolean("name") == nil)
            #expect(config.table("settings")?["read_timeout"] == .integer(840))
            #expect(config.table("name") == nil)
            #expect(config.string("absent") == nil)
        }

        @Test("string lists accept a list, a set and a single string", arguments: [
            ("{ \"a\", \"b\" }", ["a", "b"] as [String]?),
            ("{ b = true, a = true, c = false }", ["a", "b"]),
            ("\"only\"", ["only"]),
            ("{}", []),
            ("{ \"a\", 5 }", nil),
            ("{ a = \"yes\" }", nil),
            ("5", nil),
        ])
        func stringLists(source: String, expected: [String]?) throws {
            #expect(try configuration("list = " + source).stringList("list") == expected)
        }

        @Test("option names are listed per section")
        func optionNames() throws {
            let config = try configuration("b = 1\na = 2\nVirtualHost \"h\"\nc = 3\n")
            #expect(config.optionNames() == ["a", "b"])
            #expect(config.optionNames(host: "h") == ["c"])
            #expect(config.optionNames(host: "unknown") == [])
        }
    }
}

import Testing
@testable import NetHost

extension ConfigTests {
    @Suite("Sandbox")
    struct Sandbox {
        @Test("nothing reaches files or processes", arguments: [
            "os.execute(\"true\")", "io.open(\"/etc/passwd\")", "require(\"os\")",
            "dofile(\"/etc/passwd\")", "loadfile(\"/etc/passwd\")", "os.exit(1)", "os.remove(\"/tmp/x\")",
            "package.loadlib(\"libc.so.6\", \"system\")", "debug.getinfo(1)", "collectgarbage()",
        ])
        func forbidden(statement: String) throws {
            let error = try loadError("admins = {}\n" + statement + "\n")
            #expect(error.code == .runtime)
            #expect(error.line == 2)
            #expect(error.message.hasPrefix("attempt to "))
        }

        @Test("the forbidden names are nil")
        func forbiddenAreNil() throws {
            let config = try configuration("""
                all_nil = io == nil and require == nil and dofile == nil and loadfile == nil
                    and os.execute == nil and package == nil and debug == nil
                """)
            #expect(config.boolean("all_nil") == true)
        }

        @Test("the safe libraries and the restricted os table work")
        func safeLibraries() throws {
            let config = try configuration("""
                joined = table.concat({ "a", "b" }, ",")
                formatted = string.format("%s-%d", "x", 5)
                biggest = math.max(3, 9, 4)
                epoch_year = os.date("!%Y", 0)
                epoch_table = os.date("!*t", 86400).day
                now_is_integer = math.type(os.time()) == "integer"
                round_trip = os.time({ year = 2024, month = 5, day = 1, hour = 12 }) == os.time(os.date("*t", os.time({ year = 2024, month = 5, day = 1, hour = 12 })))
                clock_is_number = type(os.clock()) == "number"
                home = os.getenv("HOME")
                via_lua = Lua.string.rep("ab", 2)
                """, environment: ["HOME": "/home/nethost"])
            #expect(config.string("joined") == "a,b")
            #expect(config.string("formatted") == "x-5")
            #expect(config.integer("biggest") == 9)
            #expect(config.string("epoch_year") == "1970")
            #expect(config.integer("epoch_table") == 2)
            #expect(config.boolean("now_is_integer") == true)
            #expect(config.boolean("round_trip") == true)
            #expect(config.boolean("clock_is_number") == true)
            #expect(config.string("home") == "/home/nethost")
            #expect(config.string("via_lua") == "abab")
        }

        @Test("RunScript is refused")
        func runScript() throws {
            let error = try loadError("RunScript \"setup.lua\"\n")
            #expect(error.line == 1)
            #expect(error.message.hasPrefix("RunScript is not supported"))
        }

        @Test("each load starts from a fresh state")
        func freshState() throws {
            _ = try load("string.leaked = true\nx = 1\n")
            let config = try configuration("leaked = string.leaked == nil\n")
            #expect(config.boolean("leaked") == true)
        }
    }
}

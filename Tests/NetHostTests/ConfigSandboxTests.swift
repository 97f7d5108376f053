import Foundation
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging

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

        /// Each sets `loaded` (the loader gave something back) and `message` (its error).
        static let bytecodeRoutes: [(String, String)] = [
            ("load", "local f, err = load(BYTECODE)\nloaded = f ~= nil\nmessage = err\n"),
            ("Lua.load", "local f, err = Lua.load(BYTECODE)\nloaded = f ~= nil\nmessage = err\n"),
            ("Lua._G.load, mode bt, with env", "local f, err = Lua._G.load(BYTECODE, '=b', 'bt', {})\nloaded = f ~= nil\nmessage = err\n"),
            ("load from a reader function", """
                local done = false
                local f, err = load(function () if done then return nil end done = true return BYTECODE end)
                loaded = f ~= nil
                message = err
                """),
            ("load of a file's contents", "local f, err = load(FileContents('compiled.luac'))\nloaded = f ~= nil\nmessage = err\n"),
        ]

        @Test("bytecode is refused by every loader the config can reach", arguments: bytecodeRoutes)
        func bytecodeRefused(route: String, statements: String) throws {
            let folder = try ConfigFolder()
            let bytecode = try Bytecode.compile("return 42")
            try Data(bytecode).write(to: URL(fileURLWithPath: folder.file("compiled.luac")))
            let literal = Bytecode.luaLiteral(bytecode)
            try folder.write("prosody.cfg.lua", statements.replacingOccurrences(of: "BYTECODE", with: literal))
            let config = try folder.load().configuration
            #expect(config.boolean("loaded") == false, "\(route)")
            #expect(config.string("message") == LuaSourceOnlyTests.refusal, "\(route)")
        }

        @Test("an Include of a bytecode file is a syntax error that says why")
        func bytecodeInclude() throws {
            let folder = try ConfigFolder()
            try Data(try Bytecode.compile("x = 1")).write(to: URL(fileURLWithPath: folder.file("compiled.cfg.lua")))
            try folder.write("prosody.cfg.lua", "Include \"compiled.cfg.lua\"\n")
            let error = try #require(throws: ConfigError.self) { try folder.load() }
            #expect(error.code == .syntax)
            #expect(error.message.contains(LuaSourceOnlyTests.refusal))
        }

        @Test("string.dump is gone, so a config cannot make bytecode either")
        func noDump() throws {
            let config = try configuration("""
                dump_is_nil = string.dump == nil and Lua.string.dump == nil and ("").dump == nil
                """)
            #expect(config.boolean("dump_is_nil") == true)
            let error = try loadError("local f = Lua.load(Lua.string.dump(function() return 42 end)); answer = f()\n")
            #expect(error.line == 1)
            #expect(error.message == "attempt to call a nil value (field 'dump')")
        }

        @Test("source chunks still load through load and Lua.load, with chunk name, mode and env")
        func sourceLoads() throws {
            let config = try configuration("""
                plain = load("return 1 + 1")()
                via_lua = Lua.load("return 'x'", "=named", "t")()
                with_env = load("return y", "=named", "bt", { y = 3 })()
                local pieces, i = { "return ", "4", "2" }, 0
                from_reader = load(function () i = i + 1 return pieces[i] end)()
                local f, err = load("x = = 1", "=named")
                syntax_message = err
                """)
            #expect(config.integer("plain") == 2)
            #expect(config.string("via_lua") == "x")
            #expect(config.integer("with_env") == 3)
            #expect(config.integer("from_reader") == 42)
            #expect(config.string("syntax_message")?.hasPrefix("named:1:") == true)
        }

        @Test("each load starts from a fresh state")
        func freshState() throws {
            _ = try load("string.leaked = true\nx = 1\n")
            let config = try configuration("leaked = string.leaked == nil\n")
            #expect(config.boolean("leaked") == true)
        }
    }
}

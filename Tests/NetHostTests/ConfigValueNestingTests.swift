import LuaBridge
import NetHostTestSupport
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging

/// Nested option tables: one limit for reading them from Lua and pushing them back,
/// and pushing never writes past the Lua stack (a Swift function called from Lua is
/// only promised 20 free slots; each level of a table takes about two).
@Suite("Config value nesting", .serialized)
struct ConfigValueNestingTests {
    /// `{ a = { a = ... { 1 } } }`: `depth` tables, alternating map and array levels.
    static func nested(_ depth: Int) -> ConfigValue {
        var value = ConfigValue.integer(1)
        for level in 0 ..< depth {
            value = level.isMultiple(of: 2)
                ? .table(ConfigTable(array: [value]))
                : .table(ConfigTable(map: [.string("a"): value, .integer(7): .string("x")]))
        }
        return value
    }

    /// Lua that counts the tables of the value `deep()` returns.
    static let depthCounter = """
        local value, depth = deep(), 0
        while type(value) == "table" do depth = depth + 1; value = value[1] or value.a end
        return depth
        """

    @Test("a value nested to the limit is pushed from a Swift function called from Lua, and reads back the same")
    func atTheLimit() throws {
        let lua = try LuaState()
        let value = Self.nested(ConfigValue.maximumNesting)
        lua.stack.pushGlobalTable()
        lua.stack.setFunction("deep", in: -1) { stack in
            try stack.push(value)
            return 1
        }
        lua.stack.pop()
        try lua.run(Self.depthCounter, chunkName: "=count", results: 1)
        #expect(lua.stack.toInteger(at: -1) == ConfigValue.maximumNesting)
        lua.stack.pop()
        try lua.run("return deep()", chunkName: "=read", results: 1)
        #expect(try lua.stack.configValue(at: -1) == value)
        lua.stack.pop()
        #expect(lua.stack.top == 0)
    }

    @Test("one table deeper is refused when pushing, with the limit in the message and the stack unchanged")
    func pastTheLimitPushing() throws {
        let lua = try LuaState()
        lua.stack.push("below")
        let error = try #require(throws: LuaStack.ConfigConversionError.self) {
            try lua.stack.push(Self.nested(ConfigValue.maximumNesting + 1))
        }
        #expect(error.description == "tables nested more than \(ConfigValue.maximumNesting) deep")
        #expect(lua.stack.top == 1)
        #expect(lua.stack.toString(at: -1) == "below")
    }

    @Test("reading stops at the same limit")
    func pastTheLimitReading() throws {
        let lua = try LuaState()
        let build = "local t = 1 for _ = 1, ... do t = { t } end return t"
        for (depth, accepted) in [(ConfigValue.maximumNesting, true), (ConfigValue.maximumNesting + 1, false)] {
            try lua.stack.load(build, chunkName: "=build")
            lua.stack.push(depth)
            try lua.stack.call(arguments: 1, results: 1)
            if accepted {
                #expect(try lua.stack.configValue(at: -1) == Self.nested(0).wrapped(in: depth))
            } else {
                #expect(throws: LuaStack.ConfigConversionError.self) { try lua.stack.configValue(at: -1) }
            }
            lua.stack.pop()
        }
    }

    @Test("a config option nested to the limit reaches a module's get_option whole")
    func configToModule() async throws {
        let source = "deep = " + String(repeating: "{ a = ", count: ConfigValue.maximumNesting) + "1"
            + String(repeating: " }", count: ConfigValue.maximumNesting) + "\n"
        let configuration = try ConfigLoader.load(source: source).configuration
        let deep = try #require(configuration.value("deep"))
        let fixture = try HostFixture(modules: ["reader": """
            local value, depth = module:get_option("deep"), 0
            while type(value) == "table" do depth = depth + 1; value = value.a end
            module:log("info", "depth %d leaf %s", depth, tostring(value))
            """])
        let server = try await fixture.start(options: ["modules_enabled": .strings("reader"), "deep": deep])
        await #expect(server.loadedModules == ["reader"], "\(server.problems.all)")
        #expect(fixture.logs.contains("depth \(ConfigValue.maximumNesting) leaf 1"))
        await fixture.stop()
    }

    @Test("an option nested past the limit (set from Swift) fails get_option with the option's name, not the process")
    func pastTheLimitInAModule() async throws {
        let fixture = try HostFixture(modules: ["reader": "local value = module:get_option('deep')"])
        let server = try await fixture.start(options: [
            "modules_enabled": .strings("reader"),
            "deep": Self.nested(ConfigValue.maximumNesting + 1),
        ])
        await #expect(server.loadedModules.isEmpty)
        let problems = server.problems.all.joined(separator: "\n")
        #expect(problems.contains("config option 'deep': tables nested more than \(ConfigValue.maximumNesting) deep"), "\(problems)")
        await fixture.stop()
    }

    @Test("a config option nested past the limit is an error naming the option, file and line")
    func pastTheLimitInTheConfig() throws {
        let depth = ConfigValue.maximumNesting + 1
        let source = "x = 1\ndeep = " + String(repeating: "{ a = ", count: depth) + "1" + String(repeating: " }", count: depth) + "\n"
        let error = try #require(throws: ConfigError.self) { try ConfigLoader.load(source: source, path: "nest.cfg.lua") }
        #expect(error.code == .invalidValue)
        #expect(error.description == "nest.cfg.lua:2: option 'deep': tables nested more than \(ConfigValue.maximumNesting) deep (a cycle?)")
    }
}

extension ConfigValue {
    /// This value as the only element of `depth` nested arrays.
    fileprivate func wrapped(in depth: Int) -> ConfigValue {
        var value = self
        for _ in 0 ..< depth { value = .table(ConfigTable(array: [value])) }
        return value
    }
}

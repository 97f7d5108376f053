import LuaBridge
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging

@Suite("Lua layer")
struct LuaStateTests {
    final class Counter: LuaUserdata {
        static let luaTypeName: StaticString = "test.counter"
        var value = 0
    }

    @Test("a chunk's results come back and the stack is balanced afterwards")
    func runAndRead() throws {
        let lua = try LuaState()
        let before = lua.stack.top
        try lua.run("return 40 + 2, 'forty-two', true, 1.5", chunkName: "=test", results: 4)
        #expect(lua.stack.toInteger(at: -4) == 42)
        #expect(lua.stack.toString(at: -3) == "forty-two")
        #expect(lua.stack.toBoolean(at: -2) == true)
        #expect(lua.stack.toNumber(at: -1) == 1.5)
        lua.stack.pop(4)
        #expect(lua.stack.top == before)
    }

    @Test("a syntax error is a typed error with the chunk name and line, and leaves the stack as it was")
    func syntaxError() throws {
        let lua = try LuaState()
        let before = lua.stack.top
        let error = try #require(throws: LuaError.self) {
            try lua.run("x = 1\ny = = 2", chunkName: "@config.lua")
        }
        #expect(error.kind == .syntax)
        #expect(error.message.hasPrefix("config.lua:2:"))
        #expect(lua.stack.top == before)
    }

    @Test("a runtime error carries message and traceback, and leaves the stack as it was")
    func runtimeError() throws {
        let lua = try LuaState()
        let before = lua.stack.top
        let error = try #require(throws: LuaError.self) {
            try lua.run("local function f() error('boom') end\nf()", chunkName: "@mod.lua")
        }
        #expect(error.kind == .runtime)
        #expect(error.message == "mod.lua:1: boom")
        #expect(error.traceback?.contains("stack traceback:") == true)
        #expect(error.traceback?.contains("mod.lua:2") == true)
        #expect(lua.stack.top == before)
    }

    @Test("a non-string error value is described, not lost")
    func tableError() throws {
        let lua = try LuaState()
        let error = try #require(throws: LuaError.self) {
            try lua.run("error({ code = 1 })", chunkName: "=t")
        }
        #expect(error.message.contains("table value"))
    }

    @Test("a Swift function called from Lua gets its arguments and returns results")
    func swiftFunction() throws {
        let lua = try LuaState()
        lua.stack.pushGlobalTable()
        lua.stack.setFunction("add", in: -1) { stack in
            let a = try stack.checkInteger(1, function: "add")
            let b = try stack.checkInteger(2, function: "add")
            stack.push(a + b)
            return 1
        }
        lua.stack.pop()
        try lua.run("return add(2, 3)", chunkName: "=t", results: 1)
        #expect(lua.stack.toInteger(at: -1) == 5)
        lua.stack.pop()
        #expect(lua.stack.top == 0)
    }

    @Test("a Swift error becomes a Lua error that Lua code can catch, with the caller's position")
    func swiftErrorIntoLua() throws {
        let lua = try LuaState()
        lua.stack.pushGlobalTable()
        lua.stack.setFunction("add", in: -1) { stack in
            _ = try stack.checkInteger(1, function: "add")
            return 0
        }
        lua.stack.pop()
        try lua.run("""
            local ok, err = pcall(function() add("x") end)
            return ok, err
            """, chunkName: "@caller.lua", results: 2)
        #expect(lua.stack.toBoolean(at: -2) == false)
        #expect(lua.stack.toString(at: -1) == "caller.lua:1: bad argument #1 to 'add' (integer expected, got string)")
        lua.stack.pop(2)
    }

    @Test("an uncaught Swift error surfaces as a LuaError of the outer call")
    func swiftErrorUncaught() throws {
        let lua = try LuaState()
        lua.stack.pushGlobalTable()
        lua.stack.setFunction("fail", in: -1) { _ in throw LuaArgumentError("refused") }
        lua.stack.pop()
        let error = try #require(throws: LuaError.self) {
            try lua.run("\nfail()", chunkName: "@x.lua")
        }
        #expect(error.message == "x.lua:2: refused")
        #expect(lua.stack.top == 0)
    }

    @Test("userdata keep their Swift object, share one metatable, and release it when collected")
    func userdata() throws {
        weak var weakCounter: Counter?
        do {
            let lua = try LuaState()
            lua.stack.registerUserdataType(Counter.self, methods: [
                "bump": { stack in
                    let counter = try stack.checkUserdata(1, as: Counter.self, function: "bump")
                    counter.value += 1
                    stack.push(counter.value)
                    return 1
                },
            ])
            let counter = Counter()
            weakCounter = counter
            lua.stack.pushGlobalTable()
            lua.stack.pushUserdata(counter)
            lua.stack.rawSetField("c", in: -2)
            lua.stack.pushUserdata(Counter())
            lua.stack.rawSetField("d", in: -2)
            lua.stack.pop()
            try lua.run("""
                c:bump()
                local shared = rawequal(getmetatable(c), getmetatable(d))
                local registered = rawequal(getmetatable(c), debug.getregistry()["test.counter"])
                return c:bump(), shared, registered
                """, chunkName: "=t", results: 3)
            #expect(lua.stack.toInteger(at: -3) == 2)
            #expect(lua.stack.toBoolean(at: -2), "two userdata of one type have different metatables")
            #expect(lua.stack.toBoolean(at: -1), "the metatable is not the one registered under the type's name")
            lua.stack.pop(3)
            #expect(counter.value == 2)
            try lua.run("c = nil; d = nil", chunkName: "=t")
            lua.collectGarbage()
        }
        #expect(weakCounter == nil)
    }

    @Test("a wrong userdata type is refused with a clear message")
    func wrongUserdata() throws {
        let lua = try LuaState()
        lua.stack.registerUserdataType(Counter.self, methods: [
            "bump": { stack in
                _ = try stack.checkUserdata(1, as: Counter.self, function: "bump")
                return 0
            },
        ])
        lua.stack.pushGlobalTable()
        lua.stack.pushUserdata(Counter())
        lua.stack.rawSetField("c", in: -2)
        lua.stack.pop()
        let error = try #require(throws: LuaError.self) {
            try lua.run("c.bump({})", chunkName: "=t")
        }
        #expect(error.message.contains("test.counter expected, got table"))
    }

    @Test("config values keep their shape through Lua", arguments: [
        ("{ 5222, 5223 }", ConfigValue.table(ConfigTable(array: [.integer(5222), .integer(5223)]))),
        ("{ [15222] = 'c2s' }", .table(ConfigTable(map: [.integer(15222): .string("c2s")]))),
        ("{ 'a', x = true, [10] = 1.5 }", .table(ConfigTable(array: [.string("a")], map: [.string("x"): .boolean(true), .integer(10): .number(1.5)]))),
        ("'text'", .string("text")),
        ("7", .integer(7)),
        ("{}", .table(ConfigTable())),
    ])
    func configValues(source: String, expected: ConfigValue) throws {
        let lua = try LuaState()
        try lua.run("return " + source, chunkName: "=t", results: 1)
        let value = try lua.stack.configValue(at: -1)
        #expect(value == expected)
        lua.stack.pop()
        try lua.stack.push(expected)
        #expect(try lua.stack.configValue(at: -1) == expected)
        lua.stack.pop()
        #expect(lua.stack.top == 0)
    }

    @Test("functions and cycles cannot be config values")
    func configRefusals() throws {
        let lua = try LuaState()
        try lua.run("local t = {}; t.self = t; return print, t", chunkName: "=t", results: 2)
        #expect(throws: LuaStack.ConfigConversionError.self) { try lua.stack.configValue(at: -2) }
        #expect(throws: LuaStack.ConfigConversionError.self) { try lua.stack.configValue(at: -1) }
        lua.stack.pop(2)
    }

    @Test("the safe library set has no io, os or file loaders")
    func safeLibraries() throws {
        let lua = try LuaState(libraries: .safe)
        try lua.run("return io, os, dofile, loadfile, require, string.format('%d', 3)", chunkName: "=t", results: 6)
        for index: Int32 in -6 ... -2 { #expect(lua.stack.isNil(at: index)) }
        #expect(lua.stack.toString(at: -1) == "3")
    }

    @Test("an instruction budget stops a runaway loop")
    func budget() throws {
        let lua = try LuaState()
        lua.stack.setInstructionBudget(100_000)
        let error = try #require(throws: LuaError.self) {
            try lua.run("while true do end", chunkName: "=loop")
        }
        #expect(error.message.contains("instruction budget exceeded"))
        lua.stack.setInstructionBudget(0)
        try lua.run("local x = 0 for i = 1, 1000000 do x = x + i end", chunkName: "=ok")
    }

    @Test("the budget covers coroutines, and a pcall in a loop cannot swallow it", arguments: [
        ("a loop inside a coroutine", "coroutine.wrap(function () while true do end end)()"),
        ("pcall in a loop", "while true do pcall(function () while true do end end) end"),
        ("a coroutine resumed in a loop", "local co = coroutine.create(function () while true do end end) while true do coroutine.resume(co) end"),
        ("nested pcalls", "pcall(function () while true do pcall(function () while true do end end) end end) while true do end"),
    ])
    func budgetEverywhere(_ name: String, _ source: String) throws {
        let lua = try LuaState()
        lua.stack.setInstructionBudget(100_000)
        let error = try #require(throws: LuaError.self) { try lua.run(source, chunkName: "=runaway") }
        #expect(error.message.contains("instruction budget exceeded"), "\(name)")
        lua.stack.setInstructionBudget(0)
        try lua.run("local x = 0 for i = 1, 1000000 do x = x + i end", chunkName: "=ok")
    }

    @Test("a coroutine made under one budget is bound by the budget in force when it runs, not by the old one")
    func coroutineAcrossBudgets() throws {
        let lua = try LuaState()
        lua.stack.setInstructionBudget(100_000)
        // Made (as at a module's load) under a budget, resumed later in other callbacks.
        try lua.run("""
            worker = coroutine.create(function (n)
                while true do
                    local x = 0
                    for i = 1, n do x = x + i end
                    n = coroutine.yield(x)
                end
            end)
            """, chunkName: "=load")
        lua.stack.setInstructionBudget(0)
        // No budget: a long run in the coroutine is fine (it once kept its creator's count).
        try lua.run("assert(coroutine.resume(worker, 1000000))", chunkName: "=unbudgeted")
        // Each budgeted call gets the whole budget again.
        for _ in 0..<3 {
            lua.stack.setInstructionBudget(100_000)
            try lua.run("assert(coroutine.resume(worker, 10000))", chunkName: "=budgeted")
        }
        lua.stack.setInstructionBudget(100_000)
        let error = try #require(throws: LuaError.self) {
            try lua.run("local ok, message = coroutine.resume(worker, 1e12) error(message, 0)", chunkName: "=runaway")
        }
        #expect(error.message.contains("instruction budget exceeded"))
    }
}

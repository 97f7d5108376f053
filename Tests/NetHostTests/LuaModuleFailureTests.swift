import NIOCore
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging

/// A Lua module that fails to load, for whatever reason, leaves nothing behind:
/// no service, no hook, no timer, and no cached half-loaded copy that a later
/// load would take for a loaded module.
@Suite("Lua modules that fail to load", .serialized)
struct LuaModuleFailureTests {
    /// Registers a service, a hook and a timer, then loops until its instruction budget is spent.
    static let spender = """
        module:provides("net", { name = "spender", listener = {
            onincoming = function (conn) conn:write("half-initialised\\n") end,
        } })
        module:hook("probe", function () return "stale hook" end)
        module:add_timer(1, function () module:log("info", "stale timer fired") end)
        local n = 0
        while true do n = n + 1 end
        """

    /// Loaded after the others: asks every `probe` hook and logs the answer.
    static let probe = """
        module:log("info", "probe answered %s", tostring(module:fire_event("probe")))
        """

    static let repaired = """
        module:provides("net", { name = "spender", listener = {
            onincoming = function (conn) conn:write("repaired\\n") end,
        } })
        """

    static let options: [String: ConfigValue] = [
        "modules_enabled": .strings("spender", "probe"),
        "lua_instruction_budget": .integer(100_000),
    ]

    @Test("a module that spends its instruction budget while loading is reported, and registers nothing")
    func budgetSpentWhileLoading() throws {
        let harness = try ModuleHarness(modules: ["spender": Self.spender, "probe": Self.probe], options: Self.options)
        #expect(harness.manager.loadedModules == ["probe"])
        #expect(harness.manager.problems.all.contains {
            $0.contains("module 'spender' failed to load") && $0.contains("ran past its budget of 100000 Lua instructions")
        })
        #expect(harness.services.service(named: "spender") == nil)
        #expect(harness.logs.contains("probe answered nil"))
        #expect(!harness.logs.contains("stale hook"))
        harness.advance(by: .seconds(2))
        #expect(!harness.logs.contains("stale timer fired"))
    }

    @Test("a reload runs a failed module's file again, and a repaired file then loads and serves")
    func failedModuleLoadsAfreshOnReload() throws {
        let harness = try ModuleHarness(modules: ["spender": Self.spender, "probe": Self.probe], options: Self.options)
        try harness.manager.reload()
        #expect(!harness.manager.isLoaded("spender"))
        #expect(harness.manager.problems.all.filter { $0.contains("ran past its budget") }.count == 2)
        #expect(harness.services.service(named: "spender") == nil)

        try harness.write(module: "spender", Self.repaired)
        try harness.manager.reload()
        #expect(harness.manager.isLoaded("spender"))
        let connection = try harness.connect(to: "spender")
        #expect(try connection.exchange("hi") == "repaired\n")
    }

    @Test("a module whose load raises an error leaves no hook behind")
    func errorLeavesNoHook() throws {
        let failing = """
            module:hook("probe", function () return "stale hook" end)
            error("refusing to load")
            """
        let harness = try ModuleHarness(
            modules: ["failing": failing, "probe": Self.probe],
            options: ["modules_enabled": .strings("failing", "probe")]
        )
        #expect(harness.manager.loadedModules == ["probe"])
        #expect(harness.logs.contains("probe answered nil"))
    }

    @Test("an unloaded module's hooks are gone")
    func unloadRemovesHooks() throws {
        let hooking = #"module:hook("probe", function () return "stale hook" end)"#
        let harness = try ModuleHarness(
            modules: ["hooking": hooking, "probe": Self.probe],
            options: ["modules_enabled": .strings("hooking")]
        )
        harness.manager.unload("hooking")
        try harness.manager.load("probe")
        #expect(harness.logs.contains("probe answered nil"))
    }
}

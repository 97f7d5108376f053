import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging

/// A module reload as Prosody's `do_reload_module` does it: the new file is
/// compiled first and `save` must succeed, or the running module stays; the old
/// module's `unload` and the new code both know it is a reload; `restore` always
/// gets a table.
@Suite("Module reload safety", .serialized)
struct ModuleReloadSafetyTests {
    static func counter(_ version: String, save: String = "return { count = count }") -> String {
        """
        local count = 0
        function module.save() \(save) end
        function module.restore(state) trace("restore " .. tostring(state.count)) ; count = state.count or 0 end
        function module.unload() trace("unload, reloading=" .. tostring(module.reloading)) end
        trace("\(version) loading, reloading=" .. tostring(module.reloading) .. " saved=" .. tostring(module.saved_state and module.saved_state.count))
        module:provides("net", { name = "counter", listener = {
            onincoming = function (conn) count = count + 1; conn:write("\(version) " .. count) end,
        } })
        """
    }

    static let options: [String: ConfigValue] = ["modules_enabled": .strings("counter")]

    @Test("a new file with a syntax error is not loaded: the running module and its service stay")
    func syntaxErrorKeepsTheRunningModule() throws {
        let harness = try ModuleHarness(modules: ["counter": Self.counter("v1")], options: Self.options)
        #expect(try harness.connect(to: "counter").exchange("x") == "v1 1")
        try harness.write(module: "counter", "local x = = 1")
        harness.clearTrace()
        try harness.manager.reload()
        #expect(harness.manager.isLoaded("counter"))
        #expect(harness.traced.isEmpty)  // neither save's consequences nor unload ran
        #expect(harness.manager.problems.all.contains { $0.contains("module 'counter' was not reloaded") && $0.contains("mod_counter.lua:1:") })
        #expect(try harness.connect(to: "counter").exchange("x") == "v1 2")
    }

    @Test("an error in module.save aborts the reload and the running module keeps its state")
    func saveErrorAbortsTheReload() throws {
        let harness = try ModuleHarness(
            modules: ["counter": Self.counter("v1", save: #"error("cannot save")"#)], options: Self.options)
        #expect(try harness.connect(to: "counter").exchange("x") == "v1 1")
        try harness.write(module: "counter", Self.counter("v2"))
        try harness.manager.reload()
        #expect(harness.manager.problems.all.contains { $0.contains("module.save failed") && $0.contains("cannot save") })
        #expect(!harness.traced.contains { $0.hasPrefix("unload") })
        #expect(try harness.connect(to: "counter").exchange("x") == "v1 2")
    }

    @Test("with force_module_reload an error in module.save reloads anyway, without the state")
    func forceReloadsDespiteSaveError() throws {
        var options = Self.options
        options["force_module_reload"] = .boolean(true)
        let harness = try ModuleHarness(
            modules: ["counter": Self.counter("v1", save: #"error("cannot save")"#)], options: options)
        #expect(try harness.connect(to: "counter").exchange("x") == "v1 1")
        try harness.write(module: "counter", Self.counter("v2"))
        try harness.manager.reload()
        #expect(harness.logs.contains("reloading anyway (force_module_reload)"))
        #expect(try harness.connect(to: "counter").exchange("x") == "v2 1")
    }

    @Test("unload sees module.reloading on a reload, not on a removal; the new code sees reloading and saved_state while it loads")
    func reloadingIsVisible() throws {
        let harness = try ModuleHarness(modules: ["counter": Self.counter("v1")], options: Self.options)
        #expect(harness.traced == ["v1 loading, reloading=false saved=nil"])
        _ = try harness.connect(to: "counter").exchange("x")
        _ = try harness.connect(to: "counter").exchange("x")
        try harness.write(module: "counter", Self.counter("v2"))
        harness.clearTrace()
        try harness.manager.reload()
        #expect(harness.traced == ["unload, reloading=true", "v2 loading, reloading=true saved=2", "restore 2"])
        harness.clearTrace()
        harness.manager.unload("counter")
        #expect(harness.traced == ["unload, reloading=nil"])
    }

    @Test("restore gets an empty table when save returned nothing, as in Prosody")
    func restoreAlwaysGetsATable() throws {
        let harness = try ModuleHarness(modules: ["counter": Self.counter("v1", save: "return nil")], options: Self.options)
        try harness.write(module: "counter", Self.counter("v2"))
        harness.clearTrace()
        try harness.manager.reload()
        #expect(harness.traced.contains("restore nil"))
        #expect(try harness.connect(to: "counter").exchange("x") == "v2 1")
    }

    @Test("a new file that fails while running is logged, and the module is gone with its service")
    func runtimeErrorUnloads() throws {
        let harness = try ModuleHarness(modules: ["counter": Self.counter("v1")], options: Self.options)
        try harness.write(module: "counter", #"error("broken at run time")"#)
        try harness.manager.reload()
        #expect(!harness.manager.isLoaded("counter"))
        #expect(harness.services.service(named: "counter") == nil)
        #expect(harness.manager.problems.all.contains { $0.contains("module 'counter' failed to reload") && $0.contains("broken at run time") })
    }
}

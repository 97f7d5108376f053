import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging

/// `module:depends`, as Prosody defines it: it returns the dependency's
/// environment, keeps the dependency loaded for as long as the dependent is,
/// and reloads or unloads the dependent with it.
@Suite("Module dependencies", .serialized)
struct ModuleDependencyTests {
    /// Offers a global function, as mod_pep offers get_pep_service to mod_vcard4.
    static let pep = """
        local version = "v1"
        function get_pep_service(user) return "pep service of " .. user .. " (" .. version .. ")" end
        function module.unload() trace("pep unload") end
        """

    static let vcard = """
        local mod_pep = module:depends("pep")
        module:hook("probe", function () return mod_pep.get_pep_service("alice") end)
        function module.unload() trace("vcard unload") end
        """

    static let probe = #"module:hook("check", function () trace("probe: " .. tostring(module:fire_event("probe"))) end)"#

    private func probe(_ harness: ModuleHarness) -> String? {
        harness.clearTrace()
        harness.manager.fireEvent("check")
        return harness.traced.last
    }

    // MARK: 2. What depends returns

    @Test("depends returns the dependency's environment: its globals are what it offers other modules")
    func dependsReturnsTheEnvironment() throws {
        let harness = try ModuleHarness(
            modules: ["pep": Self.pep, "vcard": Self.vcard, "probe": Self.probe],
            options: ["modules_enabled": .strings("vcard", "probe")]
        )
        #expect(harness.manager.loadedModules == ["pep", "probe", "vcard"])
        #expect(probe(harness) == "probe: pep service of alice (v1)")
    }

    @Test("the environment's module is the dependency's module object")
    func environmentHoldsTheModule() throws {
        let harness = try ModuleHarness(
            modules: ["pep": Self.pep, "user": #"trace(module:depends("pep").module:get_name())"#],
            options: ["modules_enabled": .strings("user")]
        )
        #expect(harness.traced == ["pep"])
    }

    // MARK: 3. A dependency lives and dies with what depends on it

    @Test("a module loaded only as a dependency stays across a config reload while its dependent needs it")
    func dependencyOutlivesAConfigReload() throws {
        let harness = try ModuleHarness(
            modules: ["pep": Self.pep, "vcard": Self.vcard, "probe": Self.probe],
            options: ["modules_enabled": .strings("vcard", "probe")]
        )
        try harness.manager.reload()
        #expect(harness.manager.isLoaded("pep"))
        #expect(!harness.traced.contains("pep unload"))
        #expect(probe(harness) == "probe: pep service of alice (v1)")
    }

    @Test("once its dependent is no longer enabled, a module loaded only as a dependency is unloaded too")
    func dependencyGoesWithItsLastDependent() throws {
        let harness = try ModuleHarness(
            modules: ["pep": Self.pep, "vcard": Self.vcard],
            options: ["modules_enabled": .strings("vcard")]
        )
        harness.replaceOptions(["modules_enabled": .strings()])
        try harness.manager.reload()
        #expect(harness.manager.loadedModules.isEmpty)
        #expect(harness.traced == ["vcard unload", "pep unload"])
    }

    @Test("unloading a module unloads the modules that depend on it, after it, each firing module-unloaded")
    func unloadCascadesToDependents() throws {
        let watcher = #"module:hook("module-unloaded", function (event) trace("unloaded " .. event.module .. " on " .. event.host) end)"#
        let harness = try ModuleHarness(
            modules: ["pep": Self.pep, "vcard": Self.vcard, "watcher": watcher],
            options: ["modules_enabled": .strings("watcher", "vcard")]
        )
        harness.manager.unload("pep")
        #expect(!harness.manager.isLoaded("vcard"))
        #expect(harness.traced == ["pep unload", "unloaded pep on *", "vcard unload", "unloaded vcard on *"])
    }

    @Test("reloading a module reloads the modules that depend on it, which then hold its new environment")
    func reloadCascadesToDependents() throws {
        let harness = try ModuleHarness(
            modules: ["pep": Self.pep, "vcard": Self.vcard, "probe": Self.probe],
            options: ["modules_enabled": .strings("vcard", "probe")]
        )
        try harness.write(module: "pep", Self.pep.replacingOccurrences(of: "\"v1\"", with: "\"v2\""))
        try harness.manager.reload()
        #expect(harness.logs.contains("reloading module 'vcard': it depends on module 'pep', which was reloaded"))
        #expect(probe(harness) == "probe: pep service of alice (v2)")
    }

    // MARK: 7. Cycles and disabled dependencies

    @Test("two modules that depend on each other both load, as in Prosody, and each sees the other's functions")
    func mutualDependencyLoads() throws {
        let a = """
            local b = module:depends("b")
            function hello() return "a" end
            module:hook("check", function () trace("a sees " .. b.hello()) end)
            """
        let b = """
            local a = module:depends("a")
            function hello() return "b" end
            module:hook("check", function () trace("b sees " .. a.hello()) end)
            """
        let harness = try ModuleHarness(modules: ["a": a, "b": b], options: ["modules_enabled": .strings("a")])
        #expect(harness.manager.problems.all.isEmpty)
        #expect(harness.manager.loadedModules == ["a", "b"])
        harness.manager.fireEvent("check")
        #expect(Set(harness.traced) == ["a sees b", "b sees a"])
    }

    @Test("when one of two mutually dependent modules fails, the other, which loaded against it, goes too")
    func cycleWithAFailure() throws {
        let a = """
            module:depends("b")
            error("a fails after b loaded")
            """
        let b = #"module:depends("a"); function module.unload() trace("b unload") end"#
        let harness = try ModuleHarness(modules: ["a": a, "b": b], options: ["modules_enabled": .strings("a")])
        #expect(harness.manager.loadedModules.isEmpty)
        #expect(harness.traced == ["b unload"])
    }

    @Test("depends on a module that modules_disabled names is an error, and does not load it")
    func disabledDependencyIsAnError() throws {
        let user = """
            local ok, err = pcall(module.depends, module, "pep")
            trace(tostring(ok) .. " " .. tostring(err):gsub("^.-:%d+: ", ""))
            """
        let harness = try ModuleHarness(
            modules: ["pep": Self.pep, "user": user],
            options: ["modules_enabled": .strings("user"), "modules_disabled": .strings("pep")]
        )
        #expect(harness.traced == ["false Dependency on disabled module mod_pep"])
        #expect(!harness.manager.isLoaded("pep"))
    }

    @Test("a dependency the config comes to disable is unloaded on reload, with what depends on it")
    func newlyDisabledDependencyGoes() throws {
        let harness = try ModuleHarness(
            modules: ["pep": Self.pep, "vcard": Self.vcard],
            options: ["modules_enabled": .strings("vcard")]
        )
        harness.replaceOptions(["modules_enabled": .strings("vcard"), "modules_disabled": .strings("pep")])
        try harness.manager.reload()
        #expect(harness.manager.loadedModules.isEmpty)
        #expect(harness.manager.problems.all.contains { $0.contains("Dependency on disabled module mod_pep") })
    }
}

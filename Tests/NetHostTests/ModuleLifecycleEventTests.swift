import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging

/// The events Prosody fires about modules and their items, and at shutdown.
@Suite("Module lifecycle events and items", .serialized)
struct ModuleLifecycleEventTests {
    /// Loaded first: traces every module and item event on the global events.
    static let watcher = """
        for _, name in ipairs({ "module-loaded", "module-unloaded", "module-reloaded" }) do
            module:hook(name, function (event) trace(name .. " " .. event.module .. " " .. event.host) end)
        end
        module:hook("item-added/thing-provider", function (event) trace("added " .. event.item.name .. " from " .. event.source.name) end)
        module:hook("item-removed/thing-provider", function (event) trace("removed " .. event.item.name .. " from " .. event.source.name) end)
        module:hook("item-added/net-provider", function (event) trace("added net " .. event.item.name) end)
        module:hook("item-removed/net-provider", function (event) trace("removed net " .. event.item.name) end)
        """

    static let provider = """
        module:provides("thing", { name = "widget" })
        module:provides("net", { name = "svc", listener = {} })
        """

    @Test("module-loaded, module-reloaded and module-unloaded fire with the module's name and host")
    func moduleEvents() throws {
        let harness = try ModuleHarness(
            modules: ["watcher": Self.watcher, "thing": "trace('thing runs')"],
            options: ["modules_enabled": .strings("watcher", "thing")]
        )
        // The watcher hears of its own load too: it hooked module-loaded while loading.
        #expect(harness.traced == ["module-loaded watcher *", "thing runs", "module-loaded thing *"])
        try harness.write(module: "thing", "trace('thing runs again')")
        harness.clearTrace()
        try harness.manager.reload()
        #expect(harness.traced == ["thing runs again", "module-reloaded thing *"])
        harness.clearTrace()
        harness.manager.unload("thing")
        #expect(harness.traced == ["module-unloaded thing *"])
    }

    @Test("provides fires item-added/KIND-provider for every kind, net included, and the net service is registered")
    func providesFiresItemAdded() throws {
        let harness = try ModuleHarness(
            modules: ["watcher": Self.watcher, "provider": Self.provider],
            options: ["modules_enabled": .strings("watcher", "provider")]
        )
        #expect(harness.traced == ["module-loaded watcher *", "added widget from provider", "added net svc", "module-loaded provider *"])
        #expect(harness.services.service(named: "svc")?.module == "provider")
    }

    @Test("unloading a module fires item-removed for each of its items, and its net service goes")
    func unloadFiresItemRemoved() throws {
        let harness = try ModuleHarness(
            modules: ["watcher": Self.watcher, "provider": Self.provider],
            options: ["modules_enabled": .strings("watcher", "provider")]
        )
        harness.clearTrace()
        harness.manager.unload("provider")
        #expect(Set(harness.traced.prefix(2)) == ["removed widget from provider", "removed net svc"])
        #expect(harness.traced.last == "module-unloaded provider *")
        #expect(harness.services.service(named: "svc") == nil)
    }

    @Test("add_item, remove_item, get_host_items and handle_items, as Prosody's module API has them")
    func itemFunctions() throws {
        let collector = """
            module:handle_items("colour",
                function (event) trace("+" .. event.item) end,
                function (event) trace("-" .. event.item) end)
            """
        let early = #"module:add_item("colour", "red")"#
        let late = """
            module:add_item("colour", "green")
            module:add_item("colour", "blue")
            module:remove_item("colour", "green")
            local items = module:get_host_items("colour")
            trace("host items: " .. table.concat(items, ","))
            """
        let harness = try ModuleHarness(
            modules: ["early": early, "collector": collector, "late": late],
            options: ["modules_enabled": .strings("early", "collector", "late")]
        )
        #expect(harness.traced == ["+red", "+green", "+blue", "-green", "host items: red,blue"])
        harness.clearTrace()
        harness.manager.unload("late")
        #expect(harness.traced == ["-blue"])
    }

    @Test("a net-provider item named after a module KIND_NAME defaults to NAME, as in Prosody")
    func providerNameDefault() throws {
        let harness = try ModuleHarness(
            modules: ["net_hello": #"module:provides("net", { listener = {} })"#],
            options: ["modules_enabled": .strings("net_hello")]
        )
        #expect(harness.services.service(named: "hello")?.module == "net_hello")
    }

    // MARK: 10. Shutdown

    @Test("at shutdown modules are not unloaded: server-cleanup then server-stopped fire, then finalizers run")
    func shutdownAsProsody() throws {
        let module = """
            function module.unload() trace("unload") end
            module:hook("server-cleanup", function () trace("server-cleanup") end)
            module:hook("server-stopped", function () trace("server-stopped") end)
            keep = setmetatable({}, { __gc = function () trace("finalizer") end })
            """
        let harness = try ModuleHarness(modules: ["m": module], options: ["modules_enabled": .strings("m")])
        harness.manager.stop()
        #expect(harness.traced == ["server-cleanup", "server-stopped", "finalizer"])
    }
}

import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging

/// Modules per host, as Prosody loads them (core/modulemanager.lua,
/// `get_modules_for_host`), for the modules NetHost hosts: the global section's
/// modules once, globally; a host's own modules on that host; add_host for
/// global modules on each host that asks for them; a Component's module for its host.
@Suite("Modules per host", .serialized)
struct ModuleHostTests {
    static let perHost = #"trace("perhost on " .. module:get_host() .. " (" .. module:get_host_type() .. ")")"#

    static let globalWithAddHost = """
        trace("svc loads on " .. module:get_host())
        function module.add_host(module)
            trace("add_host " .. module:get_host() .. " " .. tostring(module.global))
            function module.unload() trace("host unload " .. module:get_host()) end
        end
        """

    @Test("the global modules_enabled loads once, globally; a host's own modules_enabled loads on that host")
    func globalOnceOthersPerHost() throws {
        let harness = try ModuleHarness(
            modules: ["svc": "trace('svc on ' .. module:get_host() .. ' (' .. module:get_host_type() .. ')')", "perhost": Self.perHost],
            options: ["modules_enabled": .strings("svc")],
            hosts: [
                "a.example": ["modules_enabled": .strings("perhost")],
                "b.example": ["modules_enabled": .strings("perhost")],
            ]
        )
        #expect(harness.traced == ["svc on * (global)", "perhost on a.example (local)", "perhost on b.example (local)"])
        #expect(harness.manager.loadedModules == ["svc"])
        #expect(harness.manager.loadedModules(on: "a.example") == ["perhost"])
        #expect(harness.manager.loadedModules(on: "b.example") == ["perhost"])
    }

    @Test("a global module's add_host gets each host that asks for it; a host's modules_disabled and a component's own list decide")
    func addHostPerHost() throws {
        let harness = try ModuleHarness(
            modules: ["svc": Self.globalWithAddHost, "gateway": "trace('gateway')"],
            options: ["modules_enabled": .strings("svc")],
            hosts: [
                "a.example": [:],                                          // inherits the global list
                "b.example": ["modules_disabled": .strings("svc")],        // opts out
                "c.example": ["component_module": .string("gateway")],      // components do not inherit it
                "d.example": ["component_module": .string("gateway"), "modules_enabled": .strings("svc")],
            ]
        )
        #expect(harness.traced == [
            "svc loads on *", "add_host a.example false", "gateway", "gateway", "add_host d.example false",
        ])
        #expect(harness.manager.loadedModules(on: "a.example") == ["svc"])
        #expect(harness.manager.loadedModules(on: "b.example").isEmpty)
        #expect(harness.manager.loadedModules(on: "d.example") == ["gateway", "svc"])
        harness.clearTrace()
        harness.manager.unload("svc")
        #expect(harness.traced == ["host unload d.example", "host unload a.example"])
        #expect(harness.manager.loadedModules(on: "a.example").isEmpty)
    }

    @Test("a module that calls set_global while loading for a host becomes global, and each host that lists it gets add_host")
    func setGlobalFromAHost() throws {
        let module = """
            module:set_global()
            trace("glob loads on " .. module:get_host())
            function module.add_host(module) trace("add_host " .. module:get_host()) end
            """
        let harness = try ModuleHarness(
            modules: ["glob": module],
            options: [:],
            hosts: ["a.example": ["modules_enabled": .strings("glob")], "b.example": ["modules_enabled": .strings("glob")]]
        )
        #expect(harness.traced == ["glob loads on *", "add_host a.example", "add_host b.example"])
        #expect(harness.manager.loadedModules == ["glob"])
        #expect(harness.manager.loadedModules(on: "b.example") == ["glob"])
    }

    @Test("Component \"name\" \"module\" loads its module for the component's host, before the host's own modules")
    func componentModule() throws {
        let harness = try ModuleHarness(
            modules: ["gateway": Self.perHost.replacingOccurrences(of: "perhost", with: "gateway"), "perhost": Self.perHost],
            options: [:],
            hosts: ["gw.example": ["component_module": .string("gateway"), "modules_enabled": .strings("perhost")]]
        )
        #expect(harness.traced == ["gateway on gw.example (component)", "perhost on gw.example (component)"])
    }

    @Test("a host with enabled = false loads nothing")
    func disabledHost() throws {
        let harness = try ModuleHarness(
            modules: ["perhost": Self.perHost],
            options: [:],
            hosts: ["off.example": ["modules_enabled": .strings("perhost"), "enabled": .boolean(false)]]
        )
        #expect(harness.traced.isEmpty)
        #expect(harness.manager.loadedModules(on: "off.example").isEmpty)
    }

    @Test("net services are process-wide: a per-host module provides its service once; on a second host it fails, naming both")
    func perHostNetService() throws {
        let module = #"module:provides("net", { name = "greeter", listener = { onconnect = function (conn) conn:write("hello from " .. module.host) end } })"#
        let harness = try ModuleHarness(
            modules: ["greeter": module],
            options: [:],
            hosts: ["a.example": ["modules_enabled": .strings("greeter")], "b.example": ["modules_enabled": .strings("greeter")]]
        )
        let service = try #require(harness.services.service(named: "greeter"))
        #expect((service.module, service.host) == ("greeter", "a.example"))
        #expect(try harness.connect(to: "greeter").exchange("") == "hello from a.example")
        #expect(harness.manager.problems.all.contains {
            $0.contains("module 'greeter' on host 'b.example' failed to load")
                && $0.contains("which module 'greeter' on host 'a.example' already provides")
        })
        #expect(harness.manager.loadedModules(on: "b.example").isEmpty)
    }

    @Test("module:hook on a host module uses that host's events; hook_global the global ones")
    func perHostEvents() throws {
        let listener = """
            module:hook("server-started", function () trace(module.host .. " hook") end)
            module:hook_global("server-started", function () trace(module.host .. " hook_global") end)
            module:hook("ping", function () trace(module.host .. " ping") end)
            """
        let pinger = #"module:hook_global("server-started", function () module:fire_event("ping") end, -1)"#
        let harness = try ModuleHarness(
            modules: ["listener": listener, "pinger": pinger],
            options: [:],
            hosts: [
                "a.example": ["modules_enabled": .strings("listener", "pinger")],
                "b.example": ["modules_enabled": .strings("listener")],
            ]
        )
        harness.manager.fireEvent("server-started")
        #expect(harness.traced == ["a.example hook_global", "b.example hook_global", "a.example ping"])
    }

    @Test("on reload a host added to the config loads its modules and a host removed unloads them")
    func hostsComeAndGo() throws {
        let harness = try ModuleHarness(
            modules: ["perhost": Self.perHost + "\nfunction module.unload() trace('unload on ' .. module.host) end"],
            options: [:],
            hosts: ["a.example": ["modules_enabled": .strings("perhost")]]
        )
        harness.replaceOptions([:], hosts: ["b.example": ["modules_enabled": .strings("perhost")]])
        harness.clearTrace()
        try harness.manager.reload()
        #expect(harness.traced == ["unload on a.example", "perhost on b.example (local)"])
        #expect(harness.logs.contains("loaded module 'perhost' on host 'b.example' on reload"))
    }

    @Test("the config's VirtualHost and Component sections are the hosts modules load for")
    func hostsFromTheConfig() throws {
        let config = try ConfigTests.configuration("""
            modules_enabled = { "svc" }
            VirtualHost "example.com"
                modules_enabled = { "extra" }
            VirtualHost "off.example.com"
                enabled = false
            Component "gw.example.com" "gateway"
                modules_disabled = { "svc" }
            Component "external.example.com"
            """)
        let plan = ModulePlan(options: config)
        #expect(plan.global == ["svc"])
        #expect(plan.hosts == [
            ModulePlan.Host(name: "example.com", isComponent: false, modules: ["svc", "extra"], disabled: []),
            ModulePlan.Host(name: "gw.example.com", isComponent: true, modules: ["gateway"], disabled: ["svc"]),
            ModulePlan.Host(name: "external.example.com", isComponent: true, modules: [], disabled: []),
        ])
    }
}

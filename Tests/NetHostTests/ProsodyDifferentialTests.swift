import Foundation
import NIOCore
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging

/// The same module lifecycle, run on Prosody 0.12's own module manager and
/// module API (`ProsodyDriver`) and on NetHost's (`ModuleHarness`): the modules
/// trace what they observe (loads, reloads with and without errors, saved state,
/// dependencies, cycles, shared tables, items, timers, add_host, per-host events,
/// shutdown), and the two traces must be the same, line for line.
@Suite("Differential: module lifecycle against Prosody 0.12", .serialized)
struct ProsodyDifferentialTests {
    enum Step {
        case write(String, String)
        case load(String, on: String)
        case reload(String, on: String)
        case unload(String, on: String)
        case fire(String, on: String)
        case advance(seconds: Int)
        case shutdown
    }

    // MARK: The modules

    /// On the global host: traces module events (before anyone else: priority
    /// 10), thing-provider items, and the shutdown events.
    static let watch = """
        for _, name in ipairs({ "module-loaded", "module-unloaded", "module-reloaded" }) do
            module:hook(name, function (event) trace("watch: " .. name .. " " .. event.module .. "@" .. event.host) end, 10)
        end
        module:handle_items("thing-provider",
            function (event) trace("watch: +thing " .. event.item.name) end,
            function (event) trace("watch: -thing " .. event.item.name) end)
        module:hook("server-cleanup", function () trace("watch: server-cleanup") end)
        module:hook("server-stopped", function () trace("watch: server-stopped") end)
        function module.unload() trace("watch: unload") end
        """

    static func base(_ version: String, save: String) -> String {
        """
        local version = "\(version)"
        function get_value() return "base " .. version end
        module:shared("data").owner = "base"
        function module.save() \(save) end
        function module.restore(state) trace("base: restore " .. tostring(state.count)) end
        function module.unload() trace("base: unload " .. version .. " reloading=" .. tostring(module.reloading)) end
        trace("base: load " .. version .. " reloading=" .. tostring(module.reloading)
            .. " saved=" .. tostring(module.saved_state and module.saved_state.count))
        """
    }

    static let user = """
        local base = module:depends("base")
        trace("user: load reloading=" .. tostring(module.reloading) .. ", base says " .. base.get_value()
            .. ", shared owner " .. tostring(module:shared("base/data").owner))
        module:provides("thing", { name = "user-thing" })
        module:hook("probe", function () trace("user: probe, base says " .. base.get_value()) end)
        module:add_timer(1, function (now, a, b)
            trace("user: timer " .. tostring(a) .. " " .. tostring(b) .. " wall-clock=" .. tostring(now > 1e9))
        end, "x", "y")
        local late = module:add_timer(5, function () trace("user: rescheduled timer") end)
        late:reschedule(2)
        local never = module:add_timer(3, function () trace("user: disarmed timer fired") end)
        never:disarm()
        function module.unload() trace("user: unload reloading=" .. tostring(module.reloading)) end
        """

    static let cycA = """
        local b = module:depends("cyc_b")
        function name() return "a" end
        module:hook("cyc-check", function () trace("cyc_a sees " .. b.name()) end, 2)
        """

    static let cycB = """
        local a = module:depends("cyc_a")
        function name() return "b" end
        module:hook("cyc-check", function () trace("cyc_b sees " .. a.name()) end, 1)
        """

    static let needsOff = """
        local ok, err = pcall(module.depends, module, "off")
        trace("needs_off: " .. tostring(ok) .. " " .. (tostring(err):gsub("^.-:%d+: ", "")))
        """

    static let svc = """
        module:set_global()
        trace("svc: load on " .. module:get_host() .. " (" .. module:get_host_type() .. ")")
        function module.add_host(module)
            trace("svc: add_host " .. module:get_host() .. " global=" .. tostring(module.global))
            module:hook("host-ping", function () trace("svc: ping on " .. module.host) end, 1)
        end
        """

    static let perhost = """
        trace("perhost: load on " .. module:get_host() .. " (" .. module:get_host_type() .. ")")
        module:hook("host-ping", function () trace("perhost: ping on " .. module.host) end)
        function module.unload() trace("perhost: unload on " .. module.host) end
        """

    static let hosts = ["a.example", "b.example"]

    static let steps: [Step] = [
        .write("watch", watch), .write("base", base("v1", save: #"trace("base: save v1"); return { count = 1 }"#)),
        .write("user", user), .write("cyc_a", cycA), .write("cyc_b", cycB),
        .write("needs_off", needsOff), .write("off", #"trace("off: loaded")"#),
        .write("svc", svc), .write("perhost", perhost),
        // Load, depend, share, items, timers.
        .load("watch", on: "*"),
        .load("user", on: "*"),
        .advance(seconds: 3),
        .fire("probe", on: "*"),
        // A syntax error: the running module stays.
        .write("base", "local x = = 1"),
        .reload("base", on: "*"),
        .fire("probe", on: "*"),
        // A good reload: save, unload (reloading), load (reloading, saved_state), restore; the dependent follows.
        .write("base", base("v2", save: #"trace("base: save v2 fails"); error("cannot save")"#)),
        .reload("base", on: "*"),
        .fire("probe", on: "*"),
        .advance(seconds: 3),
        // save fails: the reload is aborted.
        .write("base", base("v3", save: #"trace("base: save v3"); return nil"#)),
        .reload("base", on: "*"),
        .fire("probe", on: "*"),
        // Unload takes the dependent with it.
        .unload("base", on: "*"),
        .fire("probe", on: "*"),
        // save returns nothing: restore gets an empty table.
        .load("base", on: "*"),
        .write("base", base("v4", save: "return nil")),
        .reload("base", on: "*"),
        // A cycle, and a disabled dependency.
        .load("cyc_a", on: "*"),
        .fire("cyc-check", on: "*"),
        .load("needs_off", on: "*"),
        // Hosts: a global module with add_host, a per-host module, host events.
        .load("svc", on: "a.example"),
        .load("svc", on: "b.example"),
        .load("perhost", on: "a.example"),
        .load("perhost", on: "b.example"),
        .fire("host-ping", on: "a.example"),
        .unload("perhost", on: "a.example"),
        .fire("host-ping", on: "a.example"),
        .fire("host-ping", on: "b.example"),
        // Shutdown unloads nothing.
        .shutdown,
    ]

    // MARK: Running it

    static func luaSteps() -> String {
        func quoted(_ text: String) -> String { "[==[" + text + "]==]" }
        var lines = [
            "return {",
            #"  { "config", "*", "modules_disabled", { "off" } },"#,
        ]
        lines += hosts.map { #"  { "host", "\#($0)" },"# }
        for step in steps {
            switch step {
            case .write(let name, let source): lines.append(#"  { "write", "\#(name)", \#(quoted(source)) },"#)
            case .load(let name, let host): lines.append(#"  { "load", "\#(host)", "\#(name)" },"#)
            case .reload(let name, let host): lines.append(#"  { "reload", "\#(host)", "\#(name)" },"#)
            case .unload(let name, let host): lines.append(#"  { "unload", "\#(host)", "\#(name)" },"#)
            case .fire(let event, let host): lines.append(#"  { "fire", "\#(host)", "\#(event)" },"#)
            case .advance(let seconds): lines.append(#"  { "advance", \#(seconds) },"#)
            case .shutdown: lines.append(#"  { "shutdown" },"#)
            }
        }
        lines.append("}")
        return lines.joined(separator: "\n")
    }

    static func runOnNetHost() throws -> [String] {
        let harness = try ModuleHarness(
            modules: [:],
            options: ["modules_disabled": .strings("off")],
            hosts: Dictionary(uniqueKeysWithValues: hosts.map { ($0, [:]) })
        )
        let manager = harness.manager
        for step in steps {
            switch step {
            case .write(let name, let source):
                try harness.write(module: name, source)
            case .load(let name, let host):
                _ = try? manager.load(name, host: host)
                harness.trace("driver: load \(name) on \(host): loaded=\(manager.isLoaded(name, host: host))")
            case .reload(let name, let host):
                manager.reloadLuaModule(name, host: host)
                harness.trace("driver: reload \(name) on \(host): loaded=\(manager.isLoaded(name, host: host))")
            case .unload(let name, let host):
                manager.unload(name, host: host)
                harness.trace("driver: unload \(name) on \(host)")
            case .fire(let event, let host):
                manager.runtime.fireEvent(event, host: host)
            case .advance(let seconds):
                harness.advance(by: .seconds(Int64(seconds)))
            case .shutdown:
                manager.stop()
            }
        }
        return harness.traced
    }

    @Test(
        "the modules observe the same on Prosody 0.12 and on NetHost",
        .enabled(if: ProsodyDriver.isAvailable, "needs lua5.4 and Prosody 0.12 under /usr/lib/prosody")
    )
    func sameObservations() throws {
        let prosody = try ProsodyDriver.withScratchDirectory("nethost-prosody-diff") { directory in
            try ProsodyDriver.run(steps: Self.luaSteps(), in: directory)
        }
        let nethost = try Self.runOnNetHost()
        #expect(prosody.count > 60, "Prosody's run traced too little:\n\(prosody.joined(separator: "\n"))")
        #expect(nethost == prosody, "\(ProsodyDriver.comparison(prosody: prosody, nethost: nethost))")
    }
}

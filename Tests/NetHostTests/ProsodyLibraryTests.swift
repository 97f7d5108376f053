import Foundation
import NIOCore
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostLua

/// What a Prosody module finds around it: Prosody's own library on `require`'s
/// path, NetHost's versions of the server's internals (util.timer, net.server's
/// timers, util.logger, core.configmanager), and the `prosody` and `hosts` globals.
@Suite("Prosody's library and globals for modules")
struct ProsodyLibraryTests {
    static var libraryInstalled: Bool { FileManager.default.fileExists(atPath: ProsodyLibrary.defaultPath + "/util/set.lua") }

    static func harness(_ source: String, options: [String: ConfigValue] = [:], hosts: [String: [String: ConfigValue]] = [:]) throws
        -> ModuleHarness
    {
        var global = options
        global["modules_enabled"] = .strings("probe")
        return try ModuleHarness(modules: ["probe": source], optionSource: FixedOptions(global: global, hosts: hosts))
    }

    /// The C modules tried are ones without global state: util.hashes and
    /// util.encodings (under util.jid) load OpenSSL and ICU, whose process-wide
    /// allocations LeakSanitizer (make sanitize-address) reports once the Lua state
    /// has unloaded them, with no name left to suppress them by.
    @Test(
        "Prosody's util library loads from where Debian installs it, C modules included",
        .enabled(if: libraryInstalled, "needs Debian's prosody package")
    )
    func utilLibrary() throws {
        let harness = try Self.harness("""
            local set = require "util.set"
            local array = require "util.array"
            local iterators = require "util.iterators"
            local ip = require "util.ip"
            local hex = require "util.hex"
            local strbitop = require "util.strbitop"  -- a C module
            local time = require "util.time"  -- a C module
            trace("set " .. tostring(set.new({ "a", "b" }):contains("b")))
            trace("array " .. table.concat(array({ 1, 2, 3 }):map(function (x) return x * 2 end), ","))
            trace("iterators " .. iterators.count(iterators.keys({ a = 1, b = 2 })))
            trace("ip " .. tostring(ip.new_ip("192.0.2.7").bits and ip.match(ip.new_ip("192.0.2.7"), ip.new_ip("192.0.2.0"), 24)))
            trace("hex " .. hex.encode("NH"))
            trace("sxor " .. hex.encode(strbitop.sxor("ab", "  ")))
            trace("time " .. tostring(time.now() > 1e9))
            """)
        #expect(harness.traced == [
            "set true",
            "array 2,4,6",
            "iterators 2",
            "ip true",
            "hex 4e48",
            "sxor 4142",
            "time true",
        ], "\(harness.logs.all)")
    }

    @Test("util.timer and net.server's timers run on the loop's clock and give (now, id, param); a number returned re-arms")
    func timers() throws {
        let harness = try Self.harness("""
            local timer = require "util.timer"
            local server = require "net.server"
            local count = 0
            local id
            id = timer.add_task(5, function (now, fired_id, param)
                count = count + 1
                trace("util.timer " .. count .. " " .. tostring(fired_id == id) .. " " .. param .. " " .. tostring(now > 1e9))
                if count < 2 then return 3 end
            end, "p")
            local stopped = server.timer.add_task(4, function () trace("stopped timer fired") end)
            server.timer.stop(stopped)
            server.add_task(1, function () trace("net.server add_task") end)
            """)
        #expect(harness.traced.isEmpty)
        harness.advance(by: .seconds(1))
        #expect(harness.traced == ["net.server add_task"])
        harness.advance(by: .seconds(4))
        #expect(harness.traced == ["net.server add_task", "util.timer 1 true p true"])
        harness.advance(by: .seconds(3))
        #expect(harness.traced == ["net.server add_task", "util.timer 1 true p true", "util.timer 2 true p true"])
        harness.advance(by: .seconds(30))
        #expect(harness.traced.count == 3)
    }

    @Test("core.configmanager.get reads the config as Prosody's does: a host's value, else the global one")
    func configmanager() throws {
        let harness = try Self.harness("""
            local config = require "core.configmanager"
            trace(tostring(config.get("*", "greeting")) .. " " .. tostring(config.get("a.example", "greeting"))
                .. " " .. tostring(config.get("b.example", "greeting")) .. " " .. tostring(config.get("*", "missing")))
            """,
            options: ["greeting": .string("hello")],
            hosts: ["a.example": ["greeting": .string("bonjour")], "b.example": [:]])
        #expect(harness.traced == ["hello bonjour hello nil"])
    }

    @Test("core.portmanager's get_service gives the item a module provided; gone when the module unloads")
    func portmanager() throws {
        let harness = try ModuleHarness(
            modules: [
                "svc": #"module:provides("net", { name = "svc_net", listener = {}, default_port = 7 })"#,
                "probe": """
                    local portmanager = require "core.portmanager"
                    module:hook("look", function ()
                        local service = portmanager.get_service("svc_net")
                        trace(tostring(service and service.name) .. " " .. tostring(service and service.default_port)
                            .. " " .. tostring(portmanager.get_registered_services().svc_net ~= nil))
                    end)
                    """,
            ],
            optionSource: FixedOptions(global: ["modules_enabled": .strings("svc", "probe")])
        )
        harness.manager.runtime.fireEvent("look", host: "*")
        harness.manager.unload("svc")
        harness.manager.runtime.fireEvent("look", host: "*")
        #expect(harness.traced == ["svc_net 7 true", "nil nil false"])
    }

    @Test("the prosody and hosts globals have Prosody's shape; prosody.events is the global events")
    func globals() throws {
        let harness = try Self.harness("""
            trace("version " .. tostring(prosody.version:match("^0%.12") ~= nil) .. " " .. prosody.version)
            trace("paths " .. tostring(prosody.paths.config ~= nil) .. " start " .. tostring(prosody.start_time > 1e9))
            trace("sessions " .. tostring(next(prosody.full_sessions) == nil and next(prosody.bare_sessions) == nil))
            local names = {}
            for name, h in pairs(hosts) do names[#names + 1] = name .. "=" .. h.type .. (h.host == name and "" or "!") end
            table.sort(names)
            trace("hosts " .. table.concat(names, " ") .. " same " .. tostring(prosody.hosts == hosts))
            prosody.events.add_handler("probe-event", function (event) trace("global handler " .. event.x) end)
            module:fire_event("probe-event", { x = "fired" })
            """,
            hosts: ["a.example": [:], "conference.a.example": ["component_module": .string("muc")]])
        #expect(harness.traced == [
            "version true 0.12 (NetHost \(NetHostVersion.current))",
            "paths true start true",
            "sessions true",
            "hosts a.example=local conference.a.example=component same true",
            "global handler fired",
        ], "\(harness.logs.all)")
    }

    @Test("a part of Prosody's server NetHost does not provide (core.sessionmanager, net.adns) fails to load, naming it")
    func serverPartsNotProvided() throws {
        for name in ["core.sessionmanager", "net.adns"] {
            let harness = try Self.harness(#"local x = require "\#(name)"; trace("loaded")"#)
            #expect(harness.traced.isEmpty)
            #expect(harness.manager.problems.all == [
                "module 'probe' failed to load: module needs '\(name)', a part of Prosody's server that NetHost does not provide "
                    + "(it provides util.timer, util.logger, net.server's timers, addclient and link, net.connect, "
                    + "net.resolvers.basic, core.configmanager, core.statsmanager and core.portmanager's get_service "
                    + "and get_active_services)",
            ])
        }
    }

    @Test("without Prosody's library, a module that requires it fails to load with one line saying what to install")
    func missingLibrary() throws {
        let harness = try Self.harness(
            #"local set = require "util.set"; trace("loaded")"#,
            options: ["prosody_library_path": .string("/nonexistent/prosody")]
        )
        #expect(harness.traced.isEmpty)
        let problems = harness.manager.problems.all
        #expect(problems == [
            "module 'probe' failed to load: module needs 'util.set' from Prosody's library, which is not installed at "
                + "/nonexistent/prosody: install it (apt-get install prosody) or set prosody_library_path",
        ], "\(problems)")
    }
}

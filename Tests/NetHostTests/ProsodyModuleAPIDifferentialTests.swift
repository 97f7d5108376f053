import Foundation
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostLua

/// The `module:` functions the lifecycle and option differentials do not cover,
/// run on Prosody 0.12's own module manager and module API (`ProsodyDriver`) and on
/// NetHost: disco items, hook_tag, event wrappers, module status, load_resource.
/// What the probe traces, and what it logs, must be the same line for line.
@Suite("Differential: more of the module API against Prosody 0.12", .serialized)
struct ProsodyModuleAPIDifferentialTests {
    static let probe = """
        module.log = function (self, level, message, ...)
            trace("    log " .. level .. ": " .. string.format(message, ...))
        end
        local here = module.host
        module:add_feature("urn:example:a")
        module:add_feature("urn:example:b")
        module:add_identity("server", "im", "NetHost")
        module:add_extension({ name = "ext" })
        trace(here .. " features " .. table.concat(module:get_host_items("feature"), ","))
        local identity = module:get_host_items("identity")[1]
        trace(here .. " identity " .. identity.category .. "/" .. identity.type .. "/" .. identity.name)
        trace(here .. " extension " .. module:get_host_items("extension")[1].name)

        module:hook_tag("urn:example:a", "query", function (origin, stanza, data)
            trace(here .. " hook_tag " .. origin .. " " .. stanza .. " " .. tostring(data.extra))
            return true
        end)
        trace(here .. " fired " .. tostring(module:fire_event("stanza/urn:example:a:query", { origin = "o", stanza = "s", extra = 1 })))
        module:hook_tag("plain", function (origin) trace(here .. " hook_tag without xmlns " .. origin) end)
        module:fire_event("stanza/plain", { origin = "p" })
        module:hook_tag("only-one-argument")

        module:hook("wrapped", function (event) trace(here .. " handler " .. event.v); return "result" end)
        module:wrap_event("wrapped", function (next, name, data)
            trace(here .. " outer wrapper before " .. name)
            local result = next(name, data)
            trace(here .. " outer wrapper after " .. tostring(result))
            return result
        end)
        trace(here .. " wrapped returned " .. tostring(module:fire_event("wrapped", { v = "x" })))

        trace(here .. " status " .. tostring(module:get_status()))
        module:set_status("warn", "careful")
        local kind, message, time = module:get_status()
        trace(here .. " status " .. kind .. " " .. message .. " " .. type(time))
        module:set_status("error", "broken")
        module:set_status("info", "fine")
        trace(here .. " status " .. select(2, module:get_status()))
        module:set_status("info", "fine", true)
        trace(here .. " status " .. select(2, module:get_status()))
        module:log_status("warn", "%d warnings", 3)
        trace(here .. " status " .. select(2, module:get_status()))

        local file = module:load_resource("mod_" .. module.name .. ".lua")
        trace(here .. " resource " .. tostring(file ~= nil) .. " " .. (file and file:read("l") or ""))
        if file then file:close() end
        trace(here .. " missing resource " .. tostring(module:load_resource("no-such-file") == nil))
        """

    @Test(
        "disco items, hook_tag, wrappers, status and load_resource behave the same on Prosody 0.12 and on NetHost",
        .enabled(if: ProsodyDriver.isAvailable, "needs lua5.4 and Prosody 0.12 under /usr/lib/prosody")
    )
    func sameObservations() throws {
        let prosody = try ProsodyDriver.withScratchDirectory("nethost-prosody-api") { directory in
            try ProsodyDriver.runTwoHostProbe(Self.probe, in: directory)
        }
        let nethost = try ModuleHarness(modules: [:], options: [:], hosts: ["a.example": [:]]).runTwoHostProbe(Self.probe)
        #expect(prosody.count > 30, "\(prosody.joined(separator: "\n"))")
        #expect(nethost == prosody, "\(ProsodyDriver.comparison(prosody: prosody, nethost: nethost))")
    }
}

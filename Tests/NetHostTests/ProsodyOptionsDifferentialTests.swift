import Foundation
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostLua

/// Every `module:get_option*` getter that Prosody 0.12 has, called with the same
/// config file on Prosody's own `core/configmanager.lua` and `core/moduleapi.lua`
/// (`ProsodyDriver`) and on NetHost: what each returns, and what each logs, must
/// be the same, line for line. A module written for Prosody then reads its
/// options here as it does there.
@Suite("Differential: option getters against Prosody 0.12", .serialized)
struct ProsodyOptionsDifferentialTests {
    /// Values of every shape a config gives a getter: scalars of each type, text
    /// that looks like a number or a boolean, lists of none, one and two items, a
    /// table in set form, paths, and options a host section overrides.
    static let config = """
        text = "text"
        integer = 42
        float = 1.5
        numeric_text = "42"
        boolean = true
        boolean_text = "true"
        yes = "yes"
        zero = 0
        one_item = { "a" }
        two_items = { "a", "b" }
        numbers = { "7", 8 }
        empty = {}
        set_form = { a = true }
        relative = "certs/host.pem"
        dotted = "./certs/host.pem"
        absolute = "/etc/ssl/host.pem"
        admins = { "global-admin" }

        VirtualHost "a.example"
            admins = { "host-admin" }
            text = "host text"
        """

    static let names = [
        "text", "integer", "float", "numeric_text", "boolean", "boolean_text", "yes", "zero",
        "one_item", "two_items", "numbers", "empty", "set_form", "relative", "dotted", "absolute", "admins", "missing",
    ]

    /// Loaded on the global host (as probe) and on a.example (as host_probe: a module
    /// loaded globally would only be added to the host, in Prosody as here): calls each getter on each option,
    /// without and with a default, and traces the result and anything logged.
    static let probe = """
        local dir = module:get_directory()
        local function show(v)
            if v == nil then return "nil" end
            local t = type(v)
            if t == "string" then
                if v:sub(1, #dir) == dir then v = "<module dir>" .. v:sub(#dir + 1) end
                return string.format("%q", v)
            end
            if t == "number" then return math.type(v) .. " " .. tostring(v) end
            if t == "table" then
                local items = {}
                if type(v.contains) == "function" then
                    for item in v:items() do items[#items + 1] = show(item) end
                    table.sort(items)
                    return "set{" .. table.concat(items, ",") .. "}"
                end
                for i = 1, #v do items[i] = show(v[i]) end
                return "[" .. table.concat(items, ",") .. "]"
            end
            return t .. " " .. tostring(v)
        end
        module.log = function (self, level, message, ...)
            trace("    log " .. level .. ": " .. string.format(message, ...))
        end
        local getters = { "get_option", "get_option_scalar", "get_option_string", "get_option_number",
            "get_option_boolean", "get_option_array", "get_option_set", "get_option_inherited_set", "get_option_path" }
        local defaults = { false, "dflt", 3, { "d1", "d2" } }
        for _, name in ipairs({ \(names.map { "\"\($0)\"" }.joined(separator: ", ")) }) do
            for _, getter in ipairs(getters) do
                local ok, result = pcall(module[getter], module, name)
                trace(module.host .. " " .. getter .. "(" .. name .. ") = " .. (ok and show(result) or "error"))
            end
        end
        for _, getter in ipairs(getters) do
            for _, default in ipairs(defaults) do
                local ok, result = pcall(module[getter], module, "missing", default)
                trace(module.host .. " " .. getter .. "(missing, " .. show(default) .. ") = " .. (ok and show(result) or "error"))
            end
        end
        trace(module.host .. " get_option_path(relative, nil, /srv) = " .. show(module:get_option_path("relative", nil, "/srv/")))
        """

    @Test(
        "each getter returns and logs the same on Prosody 0.12 and on NetHost, for every shape of value",
        .enabled(if: ProsodyDriver.isAvailable, "needs lua5.4 and Prosody 0.12 under /usr/lib/prosody")
    )
    func sameValues() throws {
        let prosody = try ProsodyDriver.withScratchDirectory("nethost-prosody-options") { directory in
            let configFile = directory + "/prosody.cfg.lua"
            try Self.config.write(toFile: configFile, atomically: true, encoding: .utf8)
            return try ProsodyDriver.runTwoHostProbe(Self.probe, configFile: configFile, in: directory)
        }
        let loaded = try ConfigLoader.load(source: Self.config)
        let nethost = try ModuleHarness(modules: [:], optionSource: loaded.configuration).runTwoHostProbe(Self.probe)
        let expectedLines = 2 * (Self.names.count * 9 + 9 * 4 + 1)
        #expect(prosody.filter { !$0.hasPrefix("    log") }.count == expectedLines, "\(prosody.joined(separator: "\n"))")
        #expect(nethost == prosody, "\(ProsodyDriver.comparison(prosody: prosody, nethost: nethost))")
    }
}

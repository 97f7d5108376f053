import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging

/// The parts of the `module` API that depend on the module's host and on where
/// the config lives: `get_option_inherited_set`, `get_option_path`, `set_global`
/// and `context`, as Prosody's `core/moduleapi.lua` defines them.
@Suite("Module API: hosts, paths and contexts")
struct ModuleAPIHostTests {
    static let global: [String: ConfigValue] = [
        "admins": .strings("alice", "bob"),
        "greeting": .string("hello from the global section"),
        "relative": .string("certs/host.pem"),
        "absolute": .string("/etc/ssl/host.pem"),
    ]
    static let hosts: [String: [String: ConfigValue]] = [
        "example.com": ["admins": .strings("carol"), "greeting": .string("hello from example.com")],
    ]

    /// Runs `body` as a module loaded on `host` and returns what it logged with `report(...)`.
    private func run(_ body: String, host: String = "*") throws -> (lines: [String], harness: ModuleHarness) {
        let source = """
            local function report(...)
                local t = {}
                for i = 1, select("#", ...) do t[i] = tostring((select(i, ...))) end
                module:log("info", "report: %s", table.concat(t, " "))
            end
            local function sorted(set)
                local items = {}
                for item in set:items() do items[#items + 1] = item end
                table.sort(items)
                return table.concat(items, ",")
            end
            \(body)
            """
        let harness = try ModuleHarness(modules: ["api": source], options: Self.global, hosts: Self.hosts)
        try harness.manager.load("api", host: host)
        let lines = harness.logs.all.compactMap { line -> String? in
            guard line.hasPrefix("info report: ") else { return nil }
            // The metadata follows, sorted: host= (for a module on a host), then module=.
            let text = line.dropFirst("info report: ".count)
            let end = text.range(of: " host=")?.lowerBound ?? text.range(of: " module=")?.lowerBound ?? text.endIndex
            return String(text[..<end])
        }
        return (lines, harness)
    }

    @Test("get_option_inherited_set: the host's items and the global section's together", arguments: [
        ("example.com", "alice,bob,carol"),
        ("other.example", "alice,bob"),
        ("*", "alice,bob"),
    ])
    func inheritedSet(host: String, expected: String) throws {
        let (lines, _) = try run("""
            report(sorted(module:get_option_inherited_set("admins")))
            report(sorted(module:get_option_inherited_set("missing", { "dflt" })))
            """, host: host)
        #expect(lines == [expected, "dflt"])
    }

    /// As in Prosody: a relative path is taken against the module's own folder unless
    /// a parent is given (here the module and the config share a folder; the
    /// differential test against Prosody tells them apart).
    @Test("get_option_path: relative to the module's folder, or to the parent given; absolute as it is; nil when unset")
    func optionPath() throws {
        let (lines, harness) = try run("""
            report(module:get_option_path("relative"))
            report(module:get_option_path("absolute"))
            report(module:get_option_path("relative", nil, "/srv/nethost"))
            report(module:get_option_path("missing", "default.pem"))
            report(module:get_option_path("missing"))
            """)
        #expect(lines == [
            harness.directory + "/certs/host.pem",
            "/etc/ssl/host.pem",
            "/srv/nethost/certs/host.pem",
            harness.directory + "/default.pem",
            "nil",
        ])
    }

    @Test("set_global: the module is global from then on (module.global, and its host is \"*\")")
    func setGlobal() throws {
        let (lines, _) = try run("""
            report(module.global, module:get_host())
            module:set_global()
            report(module.global)
            report(module:get_host())
            """, host: "example.com")
        try #require(lines.count == 3)
        #expect(Array(lines.prefix(2)) == ["nil example.com", "true"])
        #expect(lines[2] == "*")
    }

    @Test("context(host): an object for another host, whose options are that host's; the module's own are unchanged")
    func context() throws {
        let (lines, _) = try run("""
            local other = module:context("example.com")
            report(other:get_host(), other:get_option("greeting"), sorted(other:get_option_inherited_set("admins")))
            report(module:get_host(), module:get_option("greeting"))
            report(other:get_name())
            """)
        #expect(lines == [
            "example.com hello from example.com alice,bob,carol",
            "* hello from the global section",
            "api",
        ])
    }

    @Test("a hook added through a context is on that host's events and is the module's: it goes when the module unloads")
    func contextHooksAreTheModules() throws {
        let (_, harness) = try run("""
            module:context("example.com"):hook("probe", function () module:log("info", "context hook ran") end)
            module:hook("probe", function () module:log("info", "module hook ran") end)
            """)
        harness.manager.fireEvent("probe", host: "example.com")
        harness.manager.fireEvent("probe")
        #expect(harness.count("context hook ran") == 1)
        #expect(harness.count("module hook ran") == 1)

        harness.manager.unload("api")
        // A module loaded afterwards on each events object shows the events still fire.
        try harness.write(module: "witness", #"module:hook("probe", function () module:log("info", "witness hook ran") end)"#)
        try harness.write(module: "host_witness", #"module:hook("probe", function () module:log("info", "witness hook ran") end)"#)
        try harness.manager.load("witness")
        try harness.manager.load("host_witness", host: "example.com")
        harness.manager.fireEvent("probe", host: "example.com")
        harness.manager.fireEvent("probe")
        #expect(harness.count("witness hook ran") == 2)
        #expect(harness.count("module hook ran") == 1)
        #expect(harness.count("context hook ran") == 1)
    }
}

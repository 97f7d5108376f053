import Foundation
import NetHostTestSupport
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging

/// modules_enabled, native and Lua modules, and what happens when one is missing or broken.
@Suite("Module loading", .serialized)
struct ModuleLoadingTests {
    static let echo = """
        module:provides("net", { name = "demo_echo", listener = { onincoming = function (conn, data) conn:write(data) end } })
        """

    @Test("Lua modules load from plugin_paths, native ones by name, and a disabled one does not load")
    func loadsByName() async throws {
        let fixture = try HostFixture(modules: ["demo_echo": Self.echo, "other": "module:log('info', 'other loaded')"])
        let server = try await fixture.start(options: [
            "modules_enabled": .strings("demo_echo", "demo_whoami", "other", "demo_echo"),
            "modules_disabled": .strings("other", "does_not_exist"),
            "demo_echo_ports": .list(.integer(0)),
            "demo_whoami_ports": .list(.integer(0)),
        ])
        await #expect(server.loadedModules == ["demo_echo", "demo_whoami"])
        #expect(!fixture.logs.contains("other loaded"))
        let echo = try fixture.connect(to: "demo_echo")
        try echo.send("ping\n")
        #expect(try echo.readLine() == "ping")
        let whoami = try fixture.connect(to: "demo_whoami")
        #expect(try whoami.readLine() == "127.0.0.1 \(whoami.localPort)")
        await fixture.stop()
    }

    @Test("mod_NAME/mod_NAME.lua is found too")
    func folderLayout() async throws {
        let fixture = try HostFixture(modules: [:])
        try FileManager.default.createDirectory(atPath: fixture.directory + "/mod_nested", withIntermediateDirectories: true)
        try Self.echo.replacingOccurrences(of: "\"echo\"", with: "\"nested\"")
            .write(toFile: fixture.directory + "/mod_nested/mod_nested.lua", atomically: true, encoding: .utf8)
        let server = try await fixture.start(options: ["modules_enabled": .strings("nested"), "nested_ports": .list(.integer(0))])
        await #expect(server.loadedModules == ["nested"])
        await fixture.stop()
    }

    @Test("a missing module and a failing one are reported with their error; the rest still load")
    func failuresAreIsolated() async throws {
        let fixture = try HostFixture(modules: [
            "demo_echo": Self.echo,
            "syntax": "local x = = 1",
            "runtime": "local t = nil\nlocal y = t.field",
            "badload": "function module.load() error('refusing to load') end",
            "halfway": """
                module:provides("net", { name = "halfway", listener = {} })
                error("failed after providing a service")
                """,
        ])
        let server = try await fixture.start(options: [
            "modules_enabled": .strings("missing", "syntax", "runtime", "badload", "halfway", "demo_echo"),
            "demo_echo_ports": .list(.integer(0)),
            "halfway_ports": .list(.integer(0)),
        ])
        await #expect(server.loadedModules == ["demo_echo"])
        let problems = server.problems.all.joined(separator: "\n")
        #expect(problems.contains("module 'missing' failed to load: no native module of that name, and no file in:"))
        #expect(problems.contains("mod_syntax.lua:1:"))
        #expect(problems.contains("mod_runtime.lua:2: attempt to index a nil value"))
        #expect(problems.contains("refusing to load"))
        #expect(problems.contains("failed after providing a service"))
        // The service it provided before failing is gone, so no port opened for it.
        // (Its hooks and timers: `failedModuleLeavesNothing` below, on virtual time.)
        #expect(server.services.service(named: "halfway") == nil)
        #expect(server.ports.boundAddresses(of: "halfway").isEmpty)
        let echo = try fixture.connect(to: "demo_echo")
        try echo.send("still up\n")
        #expect(try echo.readLine() == "still up")
        await fixture.stop()
    }

    @Test("a module that fails after providing a service, hooking an event and starting a timer leaves none of them")
    func failedModuleLeavesNothing() throws {
        let halfway = """
            module:provides("net", { name = "halfway", listener = {} })
            module:hook("probe", function () return "the failed module's hook" end)
            module:add_timer(1, function () module:log("info", "the failed module's timer fired") end)
            error("failed after registering")
            """
        // Loaded after it: a hook of lowest priority, which answers only if no other
        // hook does, and a timer due at the same moment as the failed module's.
        let witness = """
            module:hook("probe", function () return "the witness's hook" end, -100)
            module:log("info", "probe answered: %s", tostring(module:fire_event("probe")))
            module:add_timer(1, function () module:log("info", "the witness's timer fired") end)
            """
        let harness = try ModuleHarness(
            modules: ["halfway": halfway, "witness": witness],
            options: ["modules_enabled": .strings("halfway", "witness")]
        )
        #expect(harness.manager.loadedModules == ["witness"])
        #expect(harness.manager.problems.all.contains { $0.contains("module 'halfway' failed to load") && $0.contains("failed after registering") })
        #expect(harness.services.service(named: "halfway") == nil)
        #expect(harness.logs.contains("probe answered: the witness's hook"))

        harness.advance(by: .seconds(1))
        #expect(harness.count("the witness's timer fired") == 1)
        #expect(harness.count("the failed module's timer fired") == 0)
    }

    @Test("a module name cannot be a path")
    func namesAreNotPaths() async throws {
        let fixture = try HostFixture(modules: [:])
        let server = try await fixture.start(options: ["modules_enabled": .strings("../etc/passwd")])
        #expect(server.problems.all.contains { $0.contains("not a valid module name") })
        await fixture.stop()
    }
}

/// The `module` object as Prosody defines it.
@Suite("Module API", .serialized)
struct ModuleAPITests {
    /// Runs `body` as a module and returns what it wrote with `report(...)`.
    private func run(_ body: String, options: [String: ConfigValue] = [:], extraFiles: [String: String] = [:]) async throws -> [String] {
        let source = """
            local lines = {}
            local function report(...) local t = {} for i = 1, select("#", ...) do t[i] = tostring((select(i, ...))) end lines[#lines + 1] = table.concat(t, " ") end
            \(body)
            module:provides("net", { name = "report", listener = { onconnect = function (conn) conn:write(table.concat(lines, "\\n") .. "\\n.\\n") end } })
            """
        let fixture = try HostFixture(modules: ["api": source])
        for (name, text) in extraFiles {
            try text.write(toFile: fixture.directory + "/" + name, atomically: true, encoding: .utf8)
        }
        var all = options
        all["modules_enabled"] = all["modules_enabled"] ?? .strings("api")
        all["report_ports"] = .list(.integer(0))
        try await fixture.start(options: all)
        let client = try fixture.connect(to: "report")
        var lines: [String] = []
        while true {
            let line = try client.readLine()
            if line == "." { break }
            lines.append(line)
        }
        await fixture.stop()
        return lines
    }

    @Test("get_option and its typed forms, with defaults and wrong types")
    func options() async throws {
        let lines = try await run("""
            report(module:get_name(), module:get_host())
            report(module:get_option("s"), module:get_option("missing", "dflt"))
            report(module:get_option_string("s"), module:get_option_string("n"))
            report(module:get_option_number("n"), module:get_option_number("s", 7), module:get_option_number("n", 1, 50, 60))
            report(module:get_option_integer("n"), math.type(module:get_option_integer("n")))
            report(module:get_option_boolean("b"), module:get_option_boolean("missing", false))
            report(#module:get_option_array("list"), module:get_option_array("list")[2])
            local set = module:get_option_set("list")
            report(set:contains("b"), set:contains("z"), set:empty())
            report(module:get_option_enum("mode", "a", "a", "b"), module:get_option_enum("s", "a", "a", "b"))
            report(module:get_option_period("period"), module:get_option_period("missing", 30))
            """, options: [
                "s": .string("text"), "n": .integer(42), "b": .boolean(true),
                "list": .strings("a", "b", "c"), "mode": .string("b"), "period": .string("2 minutes"),
            ])
        #expect(lines == [
            "api *",
            "text dflt",
            "text 42",
            "42 nil 1",  // not a number: nil, as in Prosody 0.12; out of range: the default
            "42 integer",
            "true false",
            "3 b",
            "true nil false",  // util.set's contains: true or nil
            "b a",
            "120 30",
        ])
    }

    @Test("hooks run by priority, fire_event returns the first non-nil result, unhook removes")
    func hooks() async throws {
        let lines = try await run("""
            local function low() report("low") end
            module:hook("ev", low, 1)
            module:hook("ev", function () report("high") end, 10)
            module:hook("ev2", function (data) return data.x * 2 end)
            module:fire_event("ev")
            module:unhook("ev", low)
            module:fire_event("ev")
            report("result", module:fire_event("ev2", { x = 21 }))
            """)
        #expect(lines == ["high", "low", "high", "result 42"])
    }

    @Test("shared tables, require of a library beside the module, and depends")
    func sharedRequireDepends() async throws {
        let lines = try await run("""
            local a = module:shared("data")
            a.value = 5
            report(module:shared("data").value)
            local lib = module:require("helper")
            report(lib.double(4))
            local dep = module:depends("dep")
            report(dep.module:get_name(), dep.greeting)
            """, extraFiles: [
                "helper.lib.lua": "return { double = function (x) return x * 2 end }",
                "mod_dep.lua": "greeting = 'hi from dep'",
            ])
        #expect(lines == ["5", "8", "dep hi from dep"])
    }

    @Test("timers fire on the loop's clock, re-arm when they return a number, and stop")
    func timers() throws {
        let harness = try ModuleHarness(modules: ["timer": """
            local count = 0
            local handle
            handle = module:add_timer(0.01, function ()
                count = count + 1
                module:log("info", "tick %d", count)
                if count == 3 then handle:stop() end
                return 0.01
            end)
            """], options: ["modules_enabled": .strings("timer")])
        harness.advance(by: .milliseconds(9))
        #expect(harness.count("tick") == 0)
        harness.advance(by: .milliseconds(1))
        #expect(harness.count("tick 1") == 1)
        harness.advance(by: .seconds(1))
        #expect(harness.count("tick") == 3)
    }

    @Test("module:log goes to the server's log with the module's name")
    func log() async throws {
        let fixture = try HostFixture(modules: ["talk": "module:log('warn', 'value is %d', 42)"])
        try await fixture.start(options: ["modules_enabled": .strings("talk")])
        #expect(fixture.logs.contains("warning value is 42 module=talk"))
        await fixture.stop()
    }

    @Test("at shutdown module.unload does not run, as in Prosody; server-stopped fires")
    func shutdownDoesNotUnload() async throws {
        let fixture = try HostFixture(modules: ["bye": """
            local function mark(name) io.open(module:get_directory() .. '/' .. name, 'w'):close() end
            function module.unload() mark('unloaded') end
            module:hook('server-stopped', function () mark('stopped') end)
            """])
        try await fixture.start(options: ["modules_enabled": .strings("bye")])
        await fixture.server?.shutdown(drainTime: .seconds(1))
        #expect(FileManager.default.fileExists(atPath: fixture.directory + "/stopped"))
        #expect(!FileManager.default.fileExists(atPath: fixture.directory + "/unloaded"))
        await fixture.stop()
    }
}

import NIOCore
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging

/// What a Lua module hands the host (timer callbacks, listener tables, its whole
/// environment) is given back when the host no longer needs it: Lua's memory
/// returns to where it was after timers stop, listeners are replaced and modules
/// are reloaded. Each case holds 16 KiB per object, so a leak of 200 objects
/// would show as about 3 MiB; the bound allows 512 KiB of noise.
@Suite("Lua module resources", .serialized)
struct LuaModuleResourceTests {
    static let allowedGrowth = 512 * 1024

    @Test("200 timers started and stopped keep none of their callbacks")
    func stoppedTimersAreReleased() throws {
        let source = """
            module:add_timer(1, function ()
                for i = 1, 200 do
                    local blob = string.rep("t", 16384) .. i
                    local timer = module:add_timer(3600, function () return #blob end)
                    timer.stop()
                end
                module:log("info", "200 timers stopped")
            end)
            """
        let harness = try ModuleHarness(modules: ["timers": source], options: ["modules_enabled": .strings("timers")])
        let before = harness.luaMemory
        harness.advance(by: .seconds(1))
        #expect(harness.logs.contains("200 timers stopped"))
        #expect(harness.luaMemory - before < Self.allowedGrowth)
    }

    @Test("a timer that ends by returning nothing keeps nothing")
    func finishedTimersAreReleased() throws {
        let source = """
            for i = 1, 200 do
                local blob = string.rep("f", 16384) .. i
                module:add_timer(1, function () local _ = #blob end)
            end
            """
        let harness = try ModuleHarness(modules: ["timers": source], options: ["modules_enabled": .strings("timers")])
        let before = harness.luaMemory
        harness.advance(by: .seconds(1))
        #expect(before - harness.luaMemory > 200 * 16384 - Self.allowedGrowth)
    }

    @Test("conn:setlistener with a new table each time keeps only the listener in use")
    func replacedListenersAreReleased() throws {
        let source = """
            local n = 0
            local function fresh()
                n = n + 1
                local blob = string.rep("l", 16384) .. n
                return { onincoming = function (conn, data)
                    conn:setlistener(fresh())
                    conn:write(tostring(#blob > 0))
                end }
            end
            module:provides("net", { name = "swapper", listener = fresh() })
            """
        let harness = try ModuleHarness(modules: ["swapper": source], options: ["modules_enabled": .strings("swapper")])
        let connection = try harness.connect(to: "swapper")
        #expect(try connection.exchange("warm up") == "true")
        let before = harness.luaMemory
        for _ in 1...200 {
            #expect(try connection.exchange("x") == "true")
        }
        #expect(harness.luaMemory - before < Self.allowedGrowth)
    }

    @Test("four reloads of a module that holds 2 MB leave one copy of it")
    func reloadedModulesAreReleased() throws {
        func source(_ version: Int) -> String {
            """
            local blob = string.rep("r", 2 * 1024 * 1024) .. "\(version)"
            module:hook("probe", function () return #blob end)
            module:provides("net", { name = "holder", listener = {
                onincoming = function (conn) conn:write("v\(version) " .. #blob) end,
            } })
            """
        }
        let harness = try ModuleHarness(modules: ["holder": source(1)], options: ["modules_enabled": .strings("holder")])
        let before = harness.luaMemory
        for version in 2...5 {
            try harness.write(module: "holder", source(version))
            try harness.manager.reload()
        }
        #expect(harness.logs.all.filter { $0.contains("reloaded module 'holder'") }.count == 4)
        #expect(try harness.connect(to: "holder").exchange("?") == "v5 2097153")
        #expect(harness.luaMemory - before < Self.allowedGrowth)
    }

    // MARK: Timer delays that are not a number of seconds

    @Test("a NaN timer delay is an error for the module, not the process")
    func nanDelayIsRefused() throws {
        let source = "module:add_timer(0/0, function () end)"
        let harness = try ModuleHarness(modules: ["timer": source], options: ["modules_enabled": .strings("timer")])
        #expect(!harness.manager.isLoaded("timer"))
        #expect(harness.manager.problems.all.contains {
            $0.contains("module 'timer' failed to load") && $0.contains("mod_timer.lua:1:")
                && $0.contains("a timer's delay must be a number of seconds, got NaN")
        })
    }

    @Test("a timer whose callback returns NaN is stopped with an error naming its module")
    func nanRearmStopsTheTimer() throws {
        let source = """
            local runs = 0
            module:add_timer(1, function ()
                runs = runs + 1
                module:log("info", "run %d", runs)
                return 0 / 0
            end)
            """
        let harness = try ModuleHarness(modules: ["timer": source], options: ["modules_enabled": .strings("timer")])
        harness.advance(by: .seconds(1))
        #expect(harness.logs.contains("run 1"))
        #expect(harness.logs.all.contains {
            $0.contains("the timer is stopped") && $0.contains("got NaN") && $0.contains("module=timer")
        })
        harness.advance(by: .seconds(3600))
        #expect(!harness.logs.contains("run 2"))
    }

    @Test("an infinite delay, given or returned, means never, as in Prosody; a negative one means at once")
    func infiniteDelayIsNever() throws {
        let source = """
            local never = module:add_timer(math.huge, function () module:log("info", "never fired") end)
            module:add_timer(-5, function () module:log("info", "negative fired") end)
            local runs = 0
            module:add_timer(1, function ()
                runs = runs + 1
                module:log("info", "rearmed run %d", runs)
                return math.huge
            end)
            module:add_timer(7200, function () never.stop(); module:log("info", "stopped the infinite timer") end)
            """
        let harness = try ModuleHarness(modules: ["timer": source], options: ["modules_enabled": .strings("timer")])
        #expect(harness.manager.isLoaded("timer"))
        harness.advance(by: .seconds(0))
        #expect(harness.logs.contains("negative fired"))
        harness.advance(by: .hours(24 * 365 * 2))
        #expect(harness.logs.contains("rearmed run 1"))
        #expect(!harness.logs.contains("rearmed run 2"))
        #expect(harness.logs.contains("stopped the infinite timer"))
        #expect(!harness.logs.contains("never fired"))
    }

    @Test("a delay of 1e300 seconds is shortened to a century: the timer waits and can still be stopped")
    func hugeDelayIsClamped() throws {
        let source = """
            local timer = module:add_timer(1e300, function () module:log("info", "fired too soon") end)
            module:add_timer(10, function () timer.stop(); module:log("info", "stopped the far timer") end)
            """
        let harness = try ModuleHarness(modules: ["timer": source], options: ["modules_enabled": .strings("timer")])
        #expect(harness.manager.isLoaded("timer"))
        harness.advance(by: .hours(24 * 365))
        #expect(harness.logs.contains("stopped the far timer"))
        #expect(!harness.logs.contains("fired too soon"))
    }

    // MARK: Finalizers at shutdown

    static let finalizing = """
        keep = setmetatable({}, { __gc = function () module:log("warn", "finalizer ran") end })
        """

    @Test("at shutdown a module's finalizer runs while it can still call the host")
    func finalizerRunsAtShutdown() throws {
        let harness = try ModuleHarness(modules: ["final": Self.finalizing], options: ["modules_enabled": .strings("final")])
        harness.manager.stop()
        #expect(harness.logs.contains("finalizer ran"))
        // After shutdown every entry point finds the state closed and does nothing.
        #expect(harness.luaMemory == 0)
        harness.manager.fireEvent("after-shutdown")
    }

    @Test("a runtime dropped without shutdown closes its state; a finalizer calling the host gets an error, not a crash")
    func finalizerAfterTheRuntimeIsGone() throws {
        var harness: ModuleHarness? = try ModuleHarness(
            modules: ["final": Self.finalizing], options: ["modules_enabled": .strings("final")])
        let logs = try #require(harness?.logs)
        harness?.stopsManagerWhenDone = false
        harness = nil
        #expect(!logs.contains("finalizer ran"))
        #expect(logs.contains("loaded Lua module 'final'"))
    }

    // MARK: Who owns the runtime

    static let echoService = """
        module:provides("net", { name = "demo_echo", listener = { onincoming = function (conn, data) conn:write(data) end } })
        """

    @Test("a runtime with a service and a connection goes with its module manager: the service's listener does not keep it",
          arguments: [true, false])
    func runtimeGoesWithItsManager(stoppedFirst: Bool) throws {
        weak var runtime: LuaRuntime?
        var listener: (any ConnectionListener)?
        do {
            let harness = try ModuleHarness(modules: ["demo_echo": Self.echoService], options: ["modules_enabled": .strings("demo_echo")])
            harness.stopsManagerWhenDone = stoppedFirst
            runtime = harness.manager.runtime
            listener = harness.services.service(named: "demo_echo")?.listener
            #expect(try harness.connect(to: "demo_echo").exchange("ping") == "ping")
        }
        #expect(listener != nil)
        #expect(runtime == nil, "the listener, its service or its connection still holds the runtime")
        // A listener that outlives its runtime finds it gone and touches nothing.
        listener = nil
    }
}

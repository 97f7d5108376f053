import NIOCore
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging

/// `module:add_timer` as Prosody's module API defines it: the callback gets the
/// wall-clock time and the extra arguments; the handle can stop, disarm and
/// reschedule. The harness's wall clock starts at `ModuleHarness.wallClockStart`
/// and moves with the loop's virtual time.
@Suite("Module timers", .serialized)
struct ModuleTimerTests {
    @Test("the callback gets the wall-clock time, then add_timer's extra arguments")
    func callbackArguments() throws {
        let module = """
            module:add_timer(5, function (now, a, b, c, n)
                trace(string.format("now=%.0f args=%s %s %s %s", now, tostring(a), tostring(b), tostring(c), tostring(n)))
            end, "one", nil, 3)
            """
        let harness = try ModuleHarness(modules: ["t": module], options: ["modules_enabled": .strings("t")])
        harness.advance(by: .seconds(5))
        #expect(harness.traced == ["now=\(Int(ModuleHarness.wallClockStart) + 5) args=one nil 3 nil"])
    }

    @Test("the callback's time is the wall clock's, not the process's uptime")
    func nowIsWallClockTime() throws {
        let module = """
            module:add_timer(1, function (now) trace(string.format("%.0f", now - os.time())) end)
            """
        let harness = try ModuleHarness(modules: ["t": module], options: ["modules_enabled": .strings("t")])
        harness.manager.runtime.wallClock = LuaRuntime.systemWallClock
        harness.advance(by: .seconds(1))
        #expect(harness.traced == ["0"] || harness.traced == ["1"] || harness.traced == ["-0"])
    }

    @Test("disarm stops a timer, called with ':' or '.'")
    func disarm() throws {
        let module = """
            local a = module:add_timer(1, function () trace("a fired") end)
            local b = module:add_timer(1, function () trace("b fired") end)
            local c = module:add_timer(1, function () trace("c fired") end)
            a:disarm(); b.disarm(); c:stop()
            module:add_timer(2, function () trace("still running") end)
            """
        let harness = try ModuleHarness(modules: ["t": module], options: ["modules_enabled": .strings("t")])
        harness.advance(by: .seconds(3))
        #expect(harness.traced == ["still running"])
    }

    @Test("reschedule moves a pending timer to the given delay from now")
    func reschedule() throws {
        let module = """
            local late = module:add_timer(1, function (now) trace(string.format("late at %.0f", now)) end)
            local early = module:add_timer(10, function (now) trace(string.format("early at %.0f", now)) end)
            late:reschedule(5)
            early.reschedule(2)
            """
        let harness = try ModuleHarness(modules: ["t": module], options: ["modules_enabled": .strings("t")])
        let start = Int(ModuleHarness.wallClockStart)
        harness.advance(by: .seconds(1))
        #expect(harness.traced.isEmpty)
        harness.advance(by: .milliseconds(999))
        #expect(harness.traced.isEmpty)
        harness.advance(by: .milliseconds(1))
        #expect(harness.traced == ["early at \(start + 2)"])
        harness.advance(by: .seconds(3))
        #expect(harness.traced == ["early at \(start + 2)", "late at \(start + 5)"])
        harness.advance(by: .seconds(10))
        #expect(harness.traced.count == 2)
    }

    @Test("a re-armed timer keeps its extra arguments")
    func rearmedKeepsArguments() throws {
        let module = """
            local n = 0
            module:add_timer(1, function (_, label)
                n = n + 1
                trace(label .. " " .. n)
                if n < 3 then return 1 end
            end, "tick")
            """
        let harness = try ModuleHarness(modules: ["t": module], options: ["modules_enabled": .strings("t")])
        harness.advance(by: .seconds(5))
        #expect(harness.traced == ["tick 1", "tick 2", "tick 3"])
    }
}

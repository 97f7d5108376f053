import LuaBridge
import NIOCore
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging

/// `lua_memory_limit` stops Lua code that asks for more, and never raises a
/// memory error inside a Swift function called from Lua: its longjmp would skip
/// the Swift frames' clean-up (releases, `defer`s) and leak or corrupt the host.
@Suite("Lua memory limit", .serialized)
struct LuaMemoryLimitTests {
    final class Flag {
        var finished = 0
    }

    @Test("a Swift function that allocates past the limit finishes; the Lua code after it gets the memory error")
    func hostFunctionsFinish() throws {
        let lua = try LuaState()
        let flag = Flag()
        lua.stack.pushGlobalTable()
        lua.stack.setFunction("grow", in: -1) { stack in
            defer { flag.finished += 1 }
            stack.newTable()
            for index in 1...1000 {
                stack.push(String(repeating: "g", count: 1024) + "\(index)")
                stack.rawSetIndex(index, in: -2)
            }
            return 1
        }
        lua.stack.pop()
        lua.memoryLimit = lua.memoryInUse + 64 * 1024
        let error = try #require(throws: LuaError.self) {
            try lua.enforcingMemoryLimit { () throws(LuaError) in
                try lua.run("""
                    local grown = grow()
                    assert(#grown == 1000)
                    local more = {}
                    for i = 1, 1000 do more[i] = string.rep("m", 1024) .. i end
                    """, chunkName: "=limit")
            }
        }
        #expect(flag.finished == 1, "the Swift function was cut short")
        #expect(error.kind == .memory)
    }

    /// Fills the state up to its limit, then calls each host function of the
    /// module API and of `conn` under `pcall`, then lets the memory go. Each call
    /// either works or fails with a memory error in Lua; the host stays whole.
    static let sweep = #"""
        -- Fills memory to within a few bytes of the limit: big pieces first, then
        -- ever smaller ones, in a list that never needs a larger block to grow.
        local hog, size, n
        local function add() n = n + 1; hog = { hog, string.rep("h", size) .. n } end
        local function exhaust()
            hog, n = nil, 0
            for _, piece in ipairs({ 65536, 4096, 256, 16, 1 }) do
                size = piece
                while pcall(add) do end
            end
        end

        local function sweep(conn)
            local calls = {
                function () return conn:ip() end,
                function () return conn:port() end,
                function () return conn:serverport() end,
                function () return conn:id() end,
                function () return tostring(conn) end,
                function () return conn:setoption("keepalive", true) end,
                function () return conn:setreadtimeout(30) end,
                function () return conn:write("w") end,
                function () return module:get_option("sweep_option") end,
                function () return module:get_option_string("sweep_text") end,
                function () module:log("debug", "from the sweep %d", 1) end,
                function () return module:add_timer(60, function () end) end,
                function () return module:depends("helper") end,
                function () return module:fire_event("sweep-event", {}) end,
                function () return module:provides("net", { name = "late", listener = {} }) end,
            }
            local done = 0
            for _, call in ipairs(calls) do
                exhaust()
                local ok, err = pcall(call)
                hog = nil
                collectgarbage()
                if not ok then module:log("info", "sweep call %d failed: %s", _, tostring(err)) end
                collectgarbage()
                done = done + 1
            end
            return done
        end

        module:provides("net", { name = "sweep", listener = {
            onincoming = function (conn, data)
                conn:write(" swept " .. sweep(conn))
            end,
        } })
        """#

    @Test("every host function called with the memory full leaves the host whole")
    func sweepThroughHostFunctions() throws {
        let harness = try ModuleHarness(
            modules: ["sweep": Self.sweep, "helper": "function shared_value() return 42 end", "user": "module:depends('helper')"],
            options: [
                "modules_enabled": .strings("sweep"),
                "lua_memory_limit": .integer(4 * 1024 * 1024),
                "sweep_option": .table(ConfigTable(array: (1...200).map { .string(String(repeating: "o", count: 100) + "\($0)") })),
                "sweep_text": .string("text"),
            ]
        )
        let connection = try harness.connect(to: "sweep")
        let reply = try connection.exchange("go")
        #expect(reply.hasSuffix(" swept 15"), "reply: \(reply)")
        // The dependency was loaded by a call cut short or not: either way the
        // manager's bookkeeping is whole, so loading a module that needs it works.
        try harness.manager.load("user")
        #expect(harness.manager.isLoaded("user"))
        #expect(!harness.logs.contains("circular dependency"))
    }
}

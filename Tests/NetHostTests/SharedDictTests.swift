import NetHostTestSupport
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostLua

/// The store the Lua states share (`require "nethost.shared"`), from Swift and from Lua.
@Suite("Shared dicts")
struct SharedDictTests {
    @Test("set, add, get, delete and incr keep OpenResty's meanings")
    func operations() throws {
        let dicts = SharedDicts()
        try dicts.set("d", "name", .string(Array("x".utf8)))
        #expect(dicts.get("d", "name") == .string(Array("x".utf8)))
        #expect(throws: SharedDicts.Failure.exists) { try dicts.add("d", "name", .boolean(true)) }
        try dicts.add("d", "flag", .boolean(true))
        #expect(dicts.get("d", "flag") == .boolean(true))
        #expect(throws: SharedDicts.Failure.notFound) { try dicts.increment("d", "n", by: .integer(1), initial: nil) }
        #expect(try dicts.increment("d", "n", by: .integer(2), initial: .integer(40)) == .integer(42))
        #expect(try dicts.increment("d", "n", by: .number(0.5), initial: nil) == .number(42.5))
        #expect(throws: SharedDicts.Failure.notANumber) { try dicts.increment("d", "name", by: .integer(1), initial: nil) }
        try dicts.set("d", "big", .integer(Int.max))
        #expect(throws: SharedDicts.Failure.overflow) { try dicts.increment("d", "big", by: .integer(1), initial: nil) }
        dicts.delete("d", "flag")
        try dicts.set("d", "name", nil)
        #expect(dicts.get("d", "flag") == nil && dicts.get("d", "name") == nil)
        #expect(dicts.get("other", "n") == nil)
    }

    @Test("the bound counts keys and values; a write past it fails and changes nothing; deleting frees room")
    func bounded() throws {
        let dicts = SharedDicts(maximumBytes: 20)
        try dicts.set("d", "a", .string(Array(repeating: 0x61, count: 10)))  // 1 + 10
        #expect(dicts.bytesInUse == 11)
        #expect(throws: SharedDicts.Failure.full(limit: 20)) { try dicts.set("d", "b", .string(Array(repeating: 0x62, count: 10))) }
        #expect(dicts.get("d", "b") == nil && dicts.bytesInUse == 11)
        try dicts.set("d", "n", .integer(1))  // 1 + 8
        #expect(dicts.bytesInUse == 20)
        // Replacing a value by one of the same size, and incrementing, need no room.
        #expect(try dicts.increment("d", "n", by: .integer(1), initial: nil) == .integer(2))
        dicts.delete("d", "a")
        try dicts.set("d", "b", .string(Array(repeating: 0x62, count: 10)))
        #expect(dicts.bytesInUse == 20)
        #expect(SharedDicts.Failure.full(limit: 20).description.contains("lua_shared_dict_max_bytes = 20"))
    }

    @Test("from Lua: the dict methods, their failures as nil and a message, and wrong values as errors")
    func luaSurface() async throws {
        let module = #"""
            local shared = require "nethost.shared"
            local d = shared.dict("t")
            local results = {}
            local function put(...) local n = select("#", ...); local t = {}
                for i = 1, n do t[#t + 1] = tostring((select(i, ...))) end
                results[#results + 1] = table.concat(t, ",") end
            put(d:set("s", "text"))
            put(d:get("s"))
            put(d:add("s", 1))
            put(d:incr("n", 5, 10))
            put(d:incr("n"))
            put(d:incr("missing", 1))
            put(d:incr("s", 1))
            put(shared.t == d, shared.state(), shared.states())
            put(d:set("big", ("x"):rep(2000)))
            put(pcall(d.set, d, "t", {}))
            d:delete("s")
            put(d:get("s"))
            shared.dict("out"):set("results", table.concat(results, "|"))
            """#
        let fixture = try HostFixture(modules: ["dicts": module])
        let server = try await fixture.start(options: ["modules_enabled": .strings("dicts"), "lua_shared_dict_max_bytes": .integer(1000)])
        let results = server.sharedDicts.get("out", "results").flatMap { value -> String? in
            if case .string(let bytes) = value { return String(decoding: bytes, as: UTF8.self) }
            return nil
        }
        let lines = results?.split(separator: "|").map(String.init) ?? []
        #expect(lines.count == 11, "\(results ?? "no results"): \(fixture.logs.all)")
        guard lines.count == 11 else { return }
        #expect(lines[0] == "true")
        #expect(lines[1] == "text")
        #expect(lines[2] == "false,exists")
        #expect(lines[3] == "15")
        #expect(lines[4] == "16")
        #expect(lines[5] == "nil,not found")
        #expect(lines[6] == "nil,not a number")
        #expect(lines[7] == "true,1,1")
        #expect(lines[8].hasPrefix("nil,no memory: the shared dicts are full (lua_shared_dict_max_bytes = 1000"))
        #expect(lines[9].hasPrefix("false,") && lines[9].contains("a shared dict holds strings, numbers and booleans, not table"))
        #expect(lines[10] == "nil")
        await fixture.stop()
    }
}

import Foundation
import NetHostTestSupport
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging

@Suite("Lua module reload", .serialized)
struct ModuleReloadTests {
    static func source(version: Int) -> String {
        """
        module:log("info", "counter v\(version) loaded")
        local count = 0
        function module.save() return { count = count } end
        function module.restore(state) count = state.count end
        module:provides("net", { name = "counter", listener = {
            onincoming = function (conn, data)
                count = count + 1
                conn:write("v\(version) " .. count .. "\\n")
            end,
        } })
        """
    }

    @Test("a changed module file is reloaded on reload(): state passes through save/restore, open connections keep working")
    func reloadChangedModule() async throws {
        let fixture = try HostFixture(modules: ["counter": Self.source(version: 1)])
        let options: [String: ConfigValue] = [
            "modules_enabled": .strings("counter"), "counter_ports": .list(.integer(0)), "interfaces": .strings("127.0.0.1"),
        ]
        let server = try await fixture.start(options: options)
        let old = try fixture.connect(to: "counter")
        try old.send("a\n")
        #expect(try old.readLine() == "v1 1")

        try Self.source(version: 2).write(toFile: fixture.directory + "/mod_counter.lua", atomically: true, encoding: .utf8)
        try await server.reload(FixedOptions(global: options))
        #expect(fixture.logs.contains("reloaded module 'counter'"))

        let new = try fixture.connect(to: "counter")
        try new.send("b\n")
        #expect(try new.readLine() == "v2 2")  // new code, count carried over by save/restore
        try old.send("c\n")
        #expect(try old.readLine() == "v1 2")  // the open connection still runs the code it started with
        await fixture.stop()
    }

    @Test("reload() leaves an unchanged module alone: its file does not run again, while a changed one's does")
    func unchangedModule() async throws {
        let other = { (version: Int) in "module:log('info', 'other v\(version) loaded')" }
        let fixture = try HostFixture(modules: ["counter": Self.source(version: 1), "other": other(1)])
        let options: [String: ConfigValue] = ["modules_enabled": .strings("counter", "other"), "counter_ports": .list(.integer(0))]
        let server = try await fixture.start(options: options)
        #expect(fixture.logs.all.filter { $0.contains("counter v1 loaded") }.count == 1)

        try other(2).write(toFile: fixture.directory + "/mod_other.lua", atomically: true, encoding: .utf8)
        try await server.reload(FixedOptions(global: options.merging(["interfaces": .strings("127.0.0.1")]) { $1 }))
        // The reload looked at the files: the changed one ran again.
        #expect(fixture.logs.contains("other v2 loaded"))
        #expect(fixture.logs.all.filter { $0.contains("counter v1 loaded") }.count == 1)
        #expect(!fixture.logs.contains("reloaded module 'counter'"))
        let client = try fixture.connect(to: "counter")
        try client.send("x\n")
        #expect(try client.readLine() == "v1 1")
        await fixture.stop()
    }
}

import Foundation
import NetHostTestSupport
import Testing
@testable import NetHost
@testable import NetHostCore
@testable import NetHostLua

/// What the option registry says a reload does with an option (`OptionDeclaration.Reload`,
/// shown by `nethost check --options` and docs/configuration.md) is what
/// `NetHostServer.reload` does: one or more options of each class, changed by a reload.
/// (`CommandLineReloadScopeTests` does the same for the command's own options with
/// the binary and SIGHUP.)
@Suite("Reload applies what the registry says it applies")
struct ReloadScopeTests {
    /// A Lua service that says "idle" when a connection's read timeout passes and
    /// keeps the connection open, and echoes anything else.
    static let idleModule = """
        module:provides("net", { name = "idle", default_port = 0, listener = {
            onincoming = function (conn, data) conn:write(data) end,
            onreadtimeout = function (conn) conn:write("idle\\n") return true end,
        } })
        """

    /// Needs a restart: lua_instruction_budget, lua_memory_limit and plugin_paths keep
    /// the values of the start, and the reload names each in a warning; in the same
    /// reload an applied option (shutdown_timeout) takes effect.
    @Test("options read at start only keep their value and are warned about; the rest of the reload applies")
    func startOnlyOptionsKeepTheirValue() async throws {
        let fixture = try HostFixture(modules: ["idle": Self.idleModule])
        let options: [String: ConfigValue] = [
            "modules_enabled": .strings("idle"),
            "lua_instruction_budget": .integer(1_000_000),
            "lua_memory_limit": .integer(256 << 20),
            "shutdown_timeout": .integer(30),
        ]
        let server = try await fixture.start(options: options)
        let elsewhere = fixture.directory + "/elsewhere"
        try FileManager.default.createDirectory(atPath: elsewhere, withIntermediateDirectories: true)
        try #"module:log("info", "elsewhere loaded")"#.write(toFile: elsewhere + "/mod_elsewhere.lua", atomically: true, encoding: .utf8)

        var reloaded = options
        reloaded["lua_instruction_budget"] = .integer(5_000_000)
        reloaded["lua_memory_limit"] = .integer(512 << 20)
        reloaded["plugin_paths"] = .strings(elsewhere)
        reloaded["modules_enabled"] = .strings("idle", "elsewhere")
        reloaded["shutdown_timeout"] = .integer(7)
        try await server.reload(HostFixture.options(reloaded))

        let (budget, memoryLimit) = try await server.luaLoop.submit {
            let runtime = server.modules.value.runtime
            return (runtime.instructionBudget, runtime.state.memoryLimit)
        }.get()
        #expect(budget == 1_000_000)
        #expect(memoryLimit == 256 << 20)
        // The new plugin path is not searched: the module only it has does not load.
        #expect(!fixture.logs.contains("elsewhere loaded"))
        let loaded = await server.loadedModules
        #expect(!loaded.contains("elsewhere"), "\(loaded)")
        for name in ["lua_instruction_budget", "lua_memory_limit", "plugin_paths"] {
            #expect(
                fixture.logs.all.contains { $0.hasPrefix("warning \(name) changed, but a reload does not apply it (") },
                "no warning names \(name): \(fixture.logs.all)"
            )
        }
        // Applied by the same reload, and not warned about.
        #expect(server.shutdownTimeout.value == .seconds(7))
        #expect(!fixture.logs.contains("shutdown_timeout changed"))
        #expect(!fixture.logs.contains("modules_enabled changed"))
        await fixture.stop()
    }

    /// A reload that changes no start-only option warns about none.
    @Test("a reload that leaves the start-only options alone warns about none")
    func noWarningWithoutAChange() async throws {
        let fixture = try HostFixture(modules: ["idle": Self.idleModule])
        let options: [String: ConfigValue] = ["modules_enabled": .strings("idle"), "lua_memory_limit": .integer(256 << 20)]
        let server = try await fixture.start(options: options)
        try await server.reload(HostFixture.options(options))
        #expect(!fixture.logs.contains("a reload does not apply it"), "\(fixture.logs.all)")
        await fixture.stop()
    }

    /// Applied: the ports a service listens on follow the reloaded `NAME_ports`, and
    /// `max_connections` changes the limit at once.
    @Test("NAME_ports and max_connections are applied by a reload")
    func portsAndLimitsAreApplied() async throws {
        let fixture = try HostFixture(modules: ["idle": Self.idleModule])
        let before = try FreePort.allocate()
        let after = try FreePort.allocate()
        var options: [String: ConfigValue] = [
            "modules_enabled": .strings("idle"), "idle_ports": .list(.integer(before)),
            "network_settings": .table(ConfigTable(map: [.string("max_connections"): .integer(100)])),
        ]
        let server = try await fixture.start(options: options)
        #expect(server.ports.boundAddresses(of: "idle").map(\.port) == [before])
        #expect(server.limiter.maximum == 100)

        options["idle_ports"] = .list(.integer(after))
        options["network_settings"] = .table(ConfigTable(map: [.string("max_connections"): .integer(50)]))
        try await server.reload(HostFixture.options(options))
        #expect(server.ports.boundAddresses(of: "idle").map(\.port) == [after])
        #expect(server.limiter.maximum == 50)
        let client = try TestClient(connectingTo: "127.0.0.1", port: after)
        try client.send("hello\n")
        #expect(try client.read(until: "\n") == "hello\n")
        client.close()  // or the stop waits shutdown_timeout for it
        await fixture.stop()
    }

    /// The exception of network_settings: tcp_backlog is set when a port opens, so a
    /// port that stays open keeps the old backlog, a port the reload opens gets the
    /// new one, and the reload says so.
    @Test("network_settings.tcp_backlog: an open port keeps the old one, a new port gets the new one, and the reload warns")
    func backlogIsSetWhenAPortOpens() async throws {
        let fixture = try HostFixture(modules: ["idle": Self.idleModule])
        let (kept, added) = (try FreePort.allocate(), try FreePort.allocate())
        var options: [String: ConfigValue] = [
            "modules_enabled": .strings("idle"), "idle_ports": .list(.integer(kept)),
            "network_settings": .table(ConfigTable(map: [.string("tcp_backlog"): .integer(37)])),
        ]
        let server = try await fixture.start(options: options)
        #expect(try SocketInspection.listenBacklogs(port: kept) == [37])

        options["idle_ports"] = .list(.integer(kept), .integer(added))
        options["network_settings"] = .table(ConfigTable(map: [.string("tcp_backlog"): .integer(41)]))
        try await server.reload(HostFixture.options(options))
        #expect(try SocketInspection.listenBacklogs(port: kept) == [37])
        #expect(try SocketInspection.listenBacklogs(port: added) == [41])
        #expect(
            fixture.logs.all.contains { $0.hasPrefix("warning network_settings.tcp_backlog changed: the ports already open keep the old value") },
            "\(fixture.logs.all)"
        )
        await fixture.stop()
    }

    /// New connections only: a connection open before the reload keeps the read
    /// timeout it started with; one accepted after it gets the new one.
    @Test("network_settings.read_timeout applies to connections accepted after the reload only")
    func readTimeoutAppliesToNewConnections() async throws {
        let fixture = try HostFixture(modules: ["idle": Self.idleModule])
        var options: [String: ConfigValue] = [
            "modules_enabled": .strings("idle"),
            "network_settings": .table(ConfigTable(map: [.string("read_timeout"): .integer(600)])),
        ]
        let server = try await fixture.start(options: options)
        let before = try fixture.connect(to: "idle")
        try before.send("one\n")
        #expect(try before.read(until: "\n") == "one\n")

        options["network_settings"] = .table(ConfigTable(map: [.string("read_timeout"): .number(0.5)]))
        try await server.reload(HostFixture.options(options))
        let after = try fixture.connect(to: "idle")
        #expect(try after.read(until: "\n", timeout: .seconds(5)) == "idle\n")
        // Well past the new timeout: the old connection, still at 600 s, heard nothing.
        #expect(throws: (any Error).self) { try before.read(until: "\n", timeout: .milliseconds(700)) }
        try before.send("two\n")
        #expect(try before.read(until: "\n") == "two\n")
        before.close()
        after.close()
        await fixture.stop()
    }
}

import Foundation
import NIOCore
import NetHostTestSupport
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging

/// Swift services run on every event loop, and a connection never changes threads:
/// each loop has its own listening socket on the service's port (SO_REUSEPORT).
@Suite("Event loops", .serialized)
struct EventLoopSpreadTests {
    /// Replies with the connection's loop, and whether that loop also accepted it.
    final class LoopReporter: ConnectionListener {
        func onConnect(_ connection: Connection) throws {
            let acceptedHere = connection.channel.parent?.eventLoop === connection.eventLoop
            connection.write("\(ObjectIdentifier(connection.eventLoop).hashValue) \(acceptedHere ? "same" : "hop")\n")
            connection.close()
        }
        func onIncoming(_ connection: Connection, data: ByteBuffer) throws {}
    }

    final class LoopReporterModule: NativeModule {
        static let name = "loop_reporter"
        let context: ModuleContext
        init(context: ModuleContext) throws { self.context = context }
        func load() throws {
            try context.provide(NetService(name: "loop_reporter", handling: .listener(LoopReporter(), .anyLoop), module: Self.name))
        }
    }

    @Test("a Swift service's port accepts on every loop, and each connection stays on the loop that accepted it")
    func acceptsOnEveryLoop() async throws {
        let fixture = try HostFixture(modules: [:])  // two event loops
        try await fixture.start(
            options: ["modules_enabled": .strings("loop_reporter"), "loop_reporter_ports": .list(.integer(0))],
            natives: [LoopReporterModule.self]
        )
        var loops: Set<String> = []
        for _ in 0..<64 {
            let reply = try fixture.connect(to: "loop_reporter").readLine().split(separator: " ")
            #expect(reply.last == "same")
            loops.insert(String(reply.first ?? ""))
        }
        // The kernel spreads connections over the sockets by their addresses'
        // hash: 64 connections from distinct source ports all landing on one of
        // two loops would happen about once in 2^63 runs.
        #expect(loops.count == 2)
        #expect(fixture.server?.ports.boundAddresses(of: "loop_reporter").count == 1)
        await fixture.stop()
    }

    @Test("while a Lua service listens, Swift services stay off the Lua loop; a reload without it gives them every loop again")
    func swiftServicesAvoidTheLuaLoop() async throws {
        let fixture = try HostFixture(modules: [
            "lua_echo": """
                module:provides("net", { name = "lua_echo", listener = { onincoming = function (c, d) c:write(d) end } })
                """,
        ])
        let options: [String: ConfigValue] = [
            "modules_enabled": .strings("loop_reporter", "lua_echo"),
            "loop_reporter_ports": .list(.integer(0)), "lua_echo_ports": .list(.integer(0)),
        ]
        let server = try await fixture.start(options: options, natives: [LoopReporterModule.self])
        let luaLoop = "\(ObjectIdentifier(server.luaLoop).hashValue)"
        var loops: Set<String> = []
        for _ in 0..<32 {
            let reply = try fixture.connect(to: "loop_reporter").readLine().split(separator: " ")
            loops.insert(String(reply.first ?? ""))
        }
        #expect(loops.count == 1)
        #expect(!loops.contains(luaLoop), "a Swift connection was accepted on the Lua loop")
        let echo = try fixture.connect(to: "lua_echo")
        try echo.send("lua\n")
        #expect(try echo.readLine() == "lua")

        // Without Lua services, the Swift service's port moves onto every loop.
        let port = try fixture.port(of: "loop_reporter")
        var swiftOnly = options
        swiftOnly["modules_enabled"] = .strings("loop_reporter")
        swiftOnly["loop_reporter_ports"] = .list(.integer(port))
        try await server.reload(HostFixture.options(swiftOnly))
        loops = []
        for _ in 0..<64 {
            let reply = try fixture.connect(to: "loop_reporter").readLine().split(separator: " ")
            loops.insert(String(reply.first ?? ""))
        }
        #expect(loops.count == 2)
        #expect(loops.contains(luaLoop))
        await fixture.stop()
    }

    @Test("one event loop per processor the process may run on, read from Cpus_allowed")
    func affinityMask() throws {
        let path = NSTemporaryDirectory() + "nethost-status-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: path) }
        try "Name:\tnethost\nCpus_allowed:\t00000000,00000105\nCpus_allowed_list:\t0,2,8\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        #expect(UsableProcessors.affinityCount(status: path) == 3)
        try "Name:\tnethost\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(UsableProcessors.affinityCount(status: path) == nil)
        #expect(UsableProcessors.count >= 1)
    }
}

import Foundation
import NetHostTestSupport
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore

/// The server's accept path wires the limiter to its connections: on real sockets
/// (accepted on an event loop thread, set up by `ConnectionSetup`), a full server
/// sheds an idle connection for a new one. The policy itself, in virtual time:
/// `IdleSheddingTests`.
@Suite("Idle connections shed at max_connections, on sockets", .serialized)
struct IdleSheddingSocketTests {
    static let service = """
        module:provides("net", { name = "demo_chat", listener = {
            onconnect = function (conn) conn:write("hello\\n") end,
            onincoming = function (conn, data) conn:write(data) end,
            ondisconnect = function (conn, reason) module:log("info", "ondisconnect: %s", tostring(reason)) end,
        } })
        """

    @Test("at max_connections a new connection is served and the idle one closed, its service told why")
    func shedsOnSockets() async throws {
        try await HostFixture.running(modules: ["demo_chat": Self.service], options: [
            "modules_enabled": .strings("demo_chat"), "demo_chat_ports": .list(.integer(0)),
            "network_settings": .table(ConfigTable(map: [
                .string("max_connections"): .integer(2), .string("shed_idle_after"): .number(0.2),
            ])),
        ]) { fixture in
            let idle = try fixture.connect(to: "demo_chat")
            #expect(try idle.readLine() == "hello")
            let busy = try fixture.connect(to: "demo_chat")
            #expect(try busy.readLine() == "hello")
            // Both idle past shed_idle_after (a wait, not a timing check: longer only
            // makes them idler), then the busy one speaks.
            try await Task.sleep(for: .milliseconds(300))
            try busy.send("ping\n")
            #expect(try busy.readLine() == "ping")

            let newcomer = try fixture.connect(to: "demo_chat")
            #expect(try newcomer.readLine() == "hello")
            #expect(try idle.readToEnd().isEmpty, "the idle one was closed")
            try busy.send("still\n")
            #expect(try busy.readLine() == "still")
            #expect(await fixture.waitUntil { fixture.logs.contains("ondisconnect: shed: server at max_connections") })
            #expect(fixture.logs.contains("shed the connection idle longest, to admit a new one (max_connections is 2"))
            #expect(fixture.server?.limiter.shedIdleConnections == 1)
        }
    }
}

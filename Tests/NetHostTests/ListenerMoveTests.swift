import NetHost
import NetHostTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A reload that moves a port to other event loops keeps its listening sockets:
/// new channels adopt them (and new sockets join for loops left over) before the
/// old channels close, so no socket, and no connection waiting in one, is closed.
@Suite("Listener moves keep their sockets")
struct ListenerMoveTests {
    /// The inodes of the sockets a service's port is offered to a successor with.
    static func sockets(of service: String, in server: NetHostServer) -> Set<UInt64> {
        Set(server.ports.handOver().filter { $0.listener.service == service }.compactMap { entry -> UInt64? in
            var info = stat()
            return fstat(entry.descriptor, &info) == 0 ? UInt64(info.st_ino) : nil
        })
    }

    @Test("a Swift service's port moving from every loop but the Lua one to every loop keeps its socket and gains one")
    func moveKeepsTheSocket() async throws {
        let fixture = try HostFixture(modules: [
            "lua_echo": """
                module:provides("net", { name = "lua_echo", listener = { onincoming = function (c, d) c:write(d) end } })
                """,
        ])
        let options: [String: ConfigValue] = [
            "modules_enabled": .strings("demo_whoami", "lua_echo"),
            "demo_whoami_ports": .list(.integer(0)), "lua_echo_ports": .list(.integer(0)),
        ]
        let server = try await fixture.start(options: options)
        let before = Self.sockets(of: "demo_whoami", in: server)
        #expect(before.count == 1)  // two loops, one of them Lua's

        var swiftOnly = options
        swiftOnly["modules_enabled"] = .strings("demo_whoami")
        // Still port 0: the same listener (service, interface, configured port), now on other loops.
        try await server.reload(HostFixture.options(swiftOnly))
        let after = Self.sockets(of: "demo_whoami", in: server)
        #expect(before.isSubset(of: after), "the socket was closed and bound anew")
        #expect(after.count == 2)
        let whoami = try fixture.connect(to: "demo_whoami")
        #expect(try whoami.readLine().hasPrefix("127.0.0.1 "))
        await fixture.stop()
    }
}

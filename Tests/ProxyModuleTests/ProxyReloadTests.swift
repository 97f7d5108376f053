import Foundation
import NetHost
import NetHostTestSupport
import ProxyModule
import Testing

extension NetProxyEndToEnd {
    /// SIGHUP re-reads the config; `NetHostServer.reload` applies it.
    @Suite("Reload")
    struct ProxyReloadTests {
        static let echo = """
            module:provides("net", { name = "demo_echo", listener = {
                onconnect = function (conn) conn:write(conn:ip() .. "\\n") end,
                onincoming = function (conn, data) conn:write(data) end,
            } })
            """

        private func options(mappings: [Int: String], trusted: [String] = ["127.0.0.1"]) -> FixedOptions {
            FixedOptions(global: [
                "modules_enabled": .strings("net_proxy", "demo_echo", "demo_whoami"),
                "interfaces": .strings("127.0.0.1"),
                "proxy_port_mappings": .table(ConfigTable(map: Dictionary(uniqueKeysWithValues: mappings.map { (.integer($0.key), .string($0.value)) }))),
                "proxy_trusted_proxies": .table(ConfigTable(array: trusted.map { .string($0) })),
            ])
        }

        @Test("new mappings open, removed ones close, the trust list changes; established connections keep their service")
        func reloadMappingsAndTrust() async throws {
            let ports = try distinctFreePorts(2)
            let fixture = try HostFixture(modules: ["demo_echo": Self.echo])
            let server = try await fixture.start(options: options(mappings: [ports[0]: "demo_echo"]).global, natives: BuiltinModules.all + ProxyModules.all)
            let established = try TestClient(connectingTo: "127.0.0.1", port: ports[0])
            try established.send("PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n")
            #expect(try established.readLine() == "203.0.113.7")

            try await server.reload(options(mappings: [ports[1]: "demo_whoami"], trusted: ["127.0.0.0/8"]))

            // The old port is closed; its established connection still talks to echo.
            #expect(throws: FixtureError.self) { try TestClient(connectingTo: "127.0.0.1", port: ports[0]) }
            try established.send("still echoing\n")
            #expect(try established.readLine() == "still echoing")
            // The new port serves whoami, and 127.0.0.5 is now trusted.
            let fresh = try TestClient(connectingTo: "127.0.0.1", port: ports[1], from: "127.0.0.5")
            try fresh.send("PROXY TCP4 198.51.100.1 192.0.2.1 4000 443\r\n")
            #expect(try fresh.readLine() == "198.51.100.1 4000")
            await fixture.stop()
        }

        @Test("a port remapped from a Swift service to a Lua one and back serves every new connection; established ones keep their service")
        func reloadBetweenSwiftAndLua() async throws {
            let port = try distinctFreePorts(1)[0]
            let fixture = try HostFixture(modules: ["demo_echo": Self.echo])  // two event loops
            let server = try await fixture.start(options: options(mappings: [port: "demo_whoami"]).global, natives: BuiltinModules.all + ProxyModules.all)
            let servedBySwift = try served(of: 20, port: port, reply: "198.51.100.1 4000")
            #expect(servedBySwift == 20)

            // Lua lives on one loop: a connection accepted on the other could not be
            // handed to echo. The kernel spreads connections over the listening sockets
            // by address hash, so with one socket per loop 20 connections all landing
            // on the Lua loop's would happen about once in a million runs.
            try await server.reload(options(mappings: [port: "demo_echo"]))
            let servedByLua = try served(of: 20, port: port, reply: "198.51.100.1")
            #expect(servedByLua == 20)
            let established = try TestClient(connectingTo: "127.0.0.1", port: port)
            try established.send("PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n")
            #expect(try established.readLine() == "203.0.113.7")

            // Back to Swift: served on every loop again; the echo connection carries on.
            try await server.reload(options(mappings: [port: "demo_whoami"]))
            let servedBySwiftAgain = try served(of: 20, port: port, reply: "198.51.100.1 4000")
            #expect(servedBySwiftAgain == 20)
            let listener = server.ports.openListeners.first { $0.port == port }
            #expect(listener.map { $0.loops.count } == 2)
            try established.send("still echoing\n")
            #expect(try established.readLine() == "still echoing")
            await fixture.stop()
        }

        /// How many of `count` fresh connections to `port`, each sending a PROXY
        /// header, got `reply` as their first line.
        private func served(of count: Int, port: Int, reply: String) throws -> Int {
            var served = 0
            for _ in 0..<count {
                let client = try TestClient(connectingTo: "127.0.0.1", port: port)
                try client.send("PROXY TCP4 198.51.100.1 192.0.2.1 4000 443\r\n")
                if (try? client.readLine()) == reply { served += 1 }
            }
            return served
        }

        @Test("a reload whose proxy options are wrong changes nothing")
        func badReload() async throws {
            let ports = try distinctFreePorts(1)
            let fixture = try HostFixture(modules: ["demo_echo": Self.echo])
            let server = try await fixture.start(options: options(mappings: [ports[0]: "demo_echo"]).global, natives: BuiltinModules.all + ProxyModules.all)
            var broken = options(mappings: [ports[0]: "demo_echo"])
            broken.global["proxy_trusted_proxies"] = .strings("10.0.0.0/99")
            await #expect(throws: NetHostServer.ReloadError.self) { try await server.reload(broken) }
            #expect(server.options.value("proxy_trusted_proxies", host: nil) == .strings("127.0.0.1"))
            let client = try TestClient(connectingTo: "127.0.0.1", port: ports[0])
            try client.send("PROXY TCP4 203.0.113.9 192.0.2.1 51234 443\r\n")
            #expect(try client.readLine() == "203.0.113.9")
            await fixture.stop()
        }

        @Test("modules newly in modules_enabled load on reload; removed ones unload and stop listening")
        func reloadModules() async throws {
            let fixture = try HostFixture(modules: ["demo_echo": Self.echo])
            let server = try await fixture.start(options: [
                "modules_enabled": .strings("demo_echo"), "demo_echo_ports": .list(.integer(0)), "demo_whoami_ports": .list(.integer(0)),
            ], natives: BuiltinModules.all)
            await #expect(server.loadedModules == ["demo_echo"])
            try await server.reload(FixedOptions(global: [
                "modules_enabled": .strings("demo_whoami"), "interfaces": .strings("127.0.0.1"),
                "demo_echo_ports": .list(.integer(0)), "demo_whoami_ports": .list(.integer(0)),
            ]))
            await #expect(server.loadedModules == ["demo_whoami"])
            #expect(server.ports.boundAddresses(of: "demo_echo").isEmpty)
            let client = try fixture.connect(to: "demo_whoami")
            #expect(try client.readLine() == "127.0.0.1 \(client.localPort)")
            await fixture.stop()
        }
    }
}

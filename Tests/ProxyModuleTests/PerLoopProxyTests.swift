import Foundation
import NetHost
import NetHostTestSupport
import ProxyProtocol
import Testing

extension NetProxyEndToEnd {
    /// A PROXY port mapped to a service in `lua_per_loop_services` accepts on every
    /// event loop, and hands each connection to the Lua state of its own loop.
    @Suite("PROXY ports of per-loop Lua services")
    struct PerLoopProxy {
        static let module = """
            local shared = require "nethost.shared"
            module:provides("net", { name = "where", listener = {
                onconnect = function (conn)
                    conn:write(("%d %s %d %s\\n"):format(shared.state(), conn:ip(), conn:port(), conn:proxyip()))
                end,
                onincoming = function (conn, data) conn:write(data) end,
            } })
            """

        @Test("behind a PROXY v2 header, a per-loop service sees the client's address, in every loop's state")
        func proxiedToEveryState() async throws {
            let port = try FreePort.allocate()
            let fixture = try HostFixture(modules: ["where": Self.module])
            try await fixture.start(options: [
                "modules_enabled": .strings("net_proxy", "where"),
                "proxy_port_mappings": .table(ConfigTable(map: [.integer(port): .string("where")])),
                "lua_per_loop_services": .strings("where"),
            ], natives: ProxyHost.natives)
            let header = try Headers.v2TCP4()
            let connections = ProcessInfo.processInfo.environment["TSAN_OPTIONS"] == nil ? 48 : 24
            var states: Set<String> = []
            do {
                for _ in 0..<connections {
                    let client = try TestClient(connectingTo: "127.0.0.1", port: port)
                    // The header and the first bytes in one segment: none of them may be lost at the hand-over.
                    try client.send(header + Array("ping\n".utf8))
                    let fields = try client.readLine().split(separator: " ").map(String.init)
                    #expect(fields.dropFirst() == ["203.0.113.7", "51234", "127.0.0.1"])
                    #expect(try client.readLine() == "ping")
                    states.insert(fields.first ?? "")
                }
            } catch {
                await fixture.stop()
                throw error
            }
            // Both states served (all 48 on one of two loops: about once in 2^47 runs).
            #expect(states == ["1", "2"], "\(fixture.logs.all.suffix(20))")
            await fixture.stop()
        }
    }
}

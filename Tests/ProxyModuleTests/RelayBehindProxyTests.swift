import Foundation
import NetHost
import NetHostTestSupport
import ProxyModule
import ProxyProtocol
import Testing

extension NetProxyEndToEnd {
    /// modules/mod_tcp_relay.lua as shipped, behind net_proxy, announcing the real
    /// client to its backend with a PROXY v2 header.
    @Suite("mod_tcp_relay behind net_proxy")
    struct RelayBehindProxyTests {
        static let relaySource: String = {
            let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
                .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("modules/mod_tcp_relay.lua")
            return (try? String(contentsOf: file, encoding: .utf8)) ?? "error('modules/mod_tcp_relay.lua not found')"
        }()

        @Test("the load balancer names the client; the backend gets a PROXY v2 header naming it, then the client's bytes")
        func proxyHeaderToBackend() async throws {
            let backend = try LoopbackBackend(mode: .echo)
            defer { backend.shutdown() }
            let port = try FreePort.allocate()
            let fixture = try HostFixture(modules: ["tcp_relay": Self.relaySource])
            do {
                try await fixture.start(options: [
                    "modules_enabled": .strings("net_proxy", "tcp_relay"),
                    "proxy_port_mappings": .table(ConfigTable(map: [.integer(port): .string("tcp_relay")])),
                    "tcp_relay_backend": .string("127.0.0.1:\(backend.port)"),
                    "tcp_relay_send_proxy": .boolean(true),
                ], natives: BuiltinModules.all + ProxyModules.all)
                let client = try TestClient(connectingTo: "127.0.0.1", port: port)
                try client.send(Headers.v1TCP4)  // 203.0.113.7:51234 -> 192.0.2.1:443
                try client.send("hello backend\n")
                // The echo returns what the backend got: the relay's header, then the line.
                var parser = ProxyHeaderParser()
                var received: [UInt8] = []
                var parsed: (ProxyHeader, Int)?
                while parsed == nil, received.count < 4096 {
                    received += try client.read(count: 1)
                    if case .complete(let header, let consumed) = try parser.parse(received) { parsed = (header, consumed) }
                }
                let (header, consumed) = try #require(parsed)
                #expect(header.version == .v2)
                #expect(header.command == .proxy)
                #expect(header.transport == .stream)
                #expect(header.addresses == .inet(
                    source: .init(IPv4Address(203, 0, 113, 7), port: 51234),
                    destination: .init(IPv4Address(192, 0, 2, 1), port: 443)
                ))
                #expect(consumed == received.count)
                #expect(try client.readLine() == "hello backend")
                // The backend itself parsed the same from the first bytes it read.
                let first = try #require(backend.firstBytes.first)
                let again = try #require(try ProxyHeaderParser.parse(first))
                #expect(again.header == header)
                #expect(again.consumed == consumed)
                client.close()
            } catch {
                await fixture.stop()
                throw error
            }
            await fixture.stop()
        }
    }
}

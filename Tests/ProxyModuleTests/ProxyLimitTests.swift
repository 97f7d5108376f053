import Foundation
import NetHost
import NetHostTestSupport
import Testing

extension NetProxyEndToEnd {
    @Suite("Resource limits")
    struct ProxyLimitTests {
        @Test("one address may hold max_pending_headers_per_ip connections waiting for a header; the next is refused, others are not")
        func pendingHeadersPerAddress() async throws {
            let settings = ConfigValue.table(ConfigTable(map: [.string("max_pending_headers_per_ip"): .integer(3)]))
            try await withProxyHost(options: { _ in ["network_settings": settings, "proxy_header_timeout": .integer(10), "proxy_trusted_proxies": .strings("127.0.0.0/8")] }) { host in
                let silent = try (0 ..< 3).map { _ in try host.connect() }
                let refused = try host.connect()
                #expect(try refused.readToEnd().isEmpty)
                #expect(host.logLine("max_pending_headers_per_ip", "peer=127.0.0.1:\(refused.localPort)") != nil)
                #expect(!host.logs.contains("no complete PROXY header"), "closed by the time limit, not for the limit on pending headers")
                // Another address is not affected.
                let other = try host.connect(from: "127.0.0.2")
                try other.send(Headers.v1TCP4)
                #expect(try other.report()["ip"] == "203.0.113.7")
                // A slot frees up as soon as one of the silent ones completes its header.
                try silent[0].send(Headers.v1TCP4)
                #expect(try silent[0].report()["ip"] == "203.0.113.7")
                #expect(try host.servesAGoodConnection())
                _ = silent
            }
        }
    }
}

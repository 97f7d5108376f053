import Foundation
import NetHost
import NetHostTestSupport
import Testing

extension NetProxyEndToEnd {
    @Suite("Resource limits")
    struct ProxyLimitTests {
        /// Issue 14: behind a load balancer the good connections and the silent ones
        /// come from the same address. Past `max_pending_headers_per_ip` the server
        /// closes the oldest connection still waiting for its header, and admits the new one.
        @Test("past max_pending_headers_per_ip (8) a good connection from the same address is served, and one silent one is shed")
        func shedsASilentOneForAGoodOne() async throws {
            let budget = 8
            let settings = ConfigValue.table(ConfigTable(map: [.string("max_pending_headers_per_ip"): .integer(budget)]))
            try await withProxyHost(options: { _ in ["network_settings": settings, "proxy_header_timeout": .integer(60), "proxy_trusted_proxies": .strings("127.0.0.0/8")] }) { host in
                #expect(host.logLine("waiting for a header: at most \(budget) per address, ") != nil, "the budgets are logged at start")
                let silent = try (0 ..< budget).map { _ in try host.connect() }
                let good = try host.connect()
                try good.send(Headers.v1TCP4)
                #expect(try good.report()["ip"] == "203.0.113.7", "the good connection was not served")
                try good.send("echo\n")
                #expect(try good.readLine() == "echo")

                // The server names the connection it shed; that one, and only that one, is closed.
                let line = try #require(host.logLine("shed the oldest connection waiting for its PROXY header from this address"),
                                        "log:\n\(host.logs.all.joined(separator: "\n"))")
                #expect(line.contains("(max_pending_headers_per_ip is \(budget))"))
                let shed = silent.indices.filter { line.contains("peer=127.0.0.1:\(silent[$0].localPort) ") }
                try #require(shed.count == 1, "\(line)")
                #expect(try silent[shed[0]].waitForPeerClose(timeout: .seconds(10)), "the shed connection is still open")
                #expect(try silent[shed[0]].readToEnd(timeout: .zero).isEmpty, "a shed connection is not served")
                for index in silent.indices where index != shed[0] {
                    #expect(!(try silent[index].waitForPeerClose(timeout: .milliseconds(1))), "silent connection \(index) was closed too")
                }
                #expect(!host.logs.contains("no complete PROXY header"), "closed by the budget, not by the time limit")

                let server = try #require(host.fixture.server)
                server.logStatistics()
                let statistics = try #require(host.logLine("PROXY connections by outcome", "port=\(host.port) "))
                #expect(statistics.contains(" proxied=1 shed=1 shed.perAddress=1 timeout=0 "), "\(statistics)")

                // Another address is not affected, and the budget frees up as headers arrive.
                let other = try host.connect(from: "127.0.0.2")
                try other.send(Headers.v1TCP4)
                #expect(try other.report()["ip"] == "203.0.113.7")
                let survivor = silent[shed[0] == 0 ? 1 : 0]
                try survivor.send(Headers.v1TCP4)
                #expect(try survivor.report()["ip"] == "203.0.113.7")
                #expect(try host.servesAGoodConnection())
            }
        }

        /// Issue 14: at max_connections the server closes the oldest connection still
        /// waiting for its PROXY header (almost always a flood's) rather than refuse the new one.
        @Test("at max_connections (8) a new good connection is served and the oldest silent one shed")
        func shedsAtMaxConnections() async throws {
            let settings = ConfigValue.table(ConfigTable(map: [.string("max_connections"): .integer(8)]))
            try await withProxyHost(options: { _ in ["network_settings": settings, "proxy_header_timeout": .integer(60), "proxy_trusted_proxies": .strings("127.0.0.0/8")] }) { host in
                let silent = try (0 ..< 8).map { index in try host.connect(from: "127.0.0.\(index + 1)") }
                // Each one counted before the next: the server has all eight when the good one comes.
                #expect(await host.fixture.waitUntil { (host.fixture.server?.limiter.openConnections ?? 0) == 8 })
                let good = try host.connect(from: "127.0.0.100")
                try good.send(Headers.v1TCP4)
                #expect(try good.report()["ip"] == "203.0.113.7", "the good connection was not served")

                let line = try #require(host.logLine("shed the oldest connection waiting for its PROXY header, to admit a new one (max_connections is 8)"),
                                        "log:\n\(host.logs.all.joined(separator: "\n"))")
                #expect(line.contains("peer=127.0.0.1:\(silent[0].localPort) "), "not the oldest: \(line)")
                #expect(try silent[0].waitForPeerClose(timeout: .seconds(10)), "the oldest silent connection is still open")
                for index in silent.indices.dropFirst() {
                    #expect(!(try silent[index].waitForPeerClose(timeout: .milliseconds(1))), "silent connection \(index) was closed too")
                }
                #expect(!host.logs.contains("max_connections (8) reached: refused"))
                let server = try #require(host.fixture.server)
                server.logStatistics()
                let statistics = try #require(host.logLine("PROXY connections by outcome", "port=\(host.port) "))
                #expect(statistics.contains("shed.connectionLimit=1"), "\(statistics)")
            }
        }
    }
}

import Foundation
import NetHost
import NetHostTestSupport
import Testing

extension NetProxyEndToEnd {
    /// Only peers in proxy_trusted_proxies may send a header; the others are
    /// closed before a byte of theirs is read. (All of 127.0.0.0/8 is loopback
    /// on Linux, so a client can bind 127.0.0.5 as its source.)
    ///
    /// Not covered: an IPv4-mapped peer (`::ffff:127.0.0.1`). It needs a
    /// dual-stack listener, and the port manager binds "::" with IPV6_V6ONLY
    /// (as Prosody does); the mapping itself is covered by TrustedProxiesTests.
    @Suite("Trusted proxies")
    struct Trust {
        @Test("by default 127.0.0.1 is trusted")
        func defaultTrustsLoopback() async throws {
            try await withProxyHost { host in
                let client = try host.connect(from: "127.0.0.1")
                try client.send(Headers.v1TCP4)
                let report = try client.report()
                #expect(report["ip"] == "203.0.113.7")
                #expect(report["proxyip"] == "127.0.0.1")
                #expect(host.logs.contains("trusted proxies: 127.0.0.1/32, ::1/128"))
            }
        }

        @Test("by default other loopback addresses are not: 127.0.0.5 is refused")
        func defaultRefusesOtherLoopback() async throws {
            try await withProxyHost { host in
                let client = try host.connect(from: "127.0.0.5")
                try client.send(Headers.v1TCP4)
                #expect(try client.readToEnd().isEmpty)
                #expect(host.logLine("untrusted", "peer=127.0.0.5:\(client.localPort)") != nil)
                #expect(try host.servesAGoodConnection())
            }
        }

        @Test("trust { \"127.0.0.1\" }: a peer at 127.0.0.5 is refused at once, before any byte is read")
        func untrustedRefusedBeforeReading() async throws {
            try await withProxyHost(options: { _ in [
                "proxy_trusted_proxies": .strings("127.0.0.1"), "proxy_header_timeout": .integer(10),
            ] }) { host in
                // Sends nothing: closed at once all the same, not after the header timeout.
                let silent = try host.connect(from: "127.0.0.5")
                #expect(try silent.readToEnd().isEmpty)
                let line = host.logLine("refused a connection from an untrusted peer (not in proxy_trusted_proxies)",
                                        "peer=127.0.0.5:\(silent.localPort)")
                #expect(line?.hasPrefix("warning ") == true)
                #expect(line?.contains("port=\(host.port)") == true)

                // A good header changes nothing, and nothing of it is parsed.
                let talker = try host.connect(from: "127.0.0.5")
                try? talker.send(Headers.v1TCP4)
                // The close comes after the refusal was counted and (not) logged.
                #expect(try talker.readToEnd().isEmpty)
                // The same refusal from the same address is counted, not logged again (flood-proof log).
                let server = try #require(host.fixture.server)
                server.logStatistics()
                let counts = host.logLine("PROXY connections by outcome", "port=\(host.port) ")
                #expect(counts?.contains(" untrusted=2") == true, "\(counts ?? "no statistics line")")
                #expect(!host.logs.contains("peer=127.0.0.5:\(talker.localPort)"))
                #expect(!host.logs.contains("invalid PROXY header"))
                #expect(!host.logs.contains("no complete PROXY header"), "closed by the time limit, not for distrust")
                #expect(!host.logs.contains("client 203.0.113.7"))

                #expect(try host.servesAGoodConnection())
            }
        }

        @Test("trust { \"127.0.0.0/24\" }: a peer at 127.0.0.5 is served, and is the proxy")
        func networkTrusted() async throws {
            try await withProxyHost(options: { _ in ["proxy_trusted_proxies": .strings("127.0.0.0/24")] }) { host in
                let client = try host.connect(from: "127.0.0.5")
                try client.send(Headers.v1TCP4)
                let report = try client.report()
                #expect(report["ip"] == "203.0.113.7")
                #expect(report["proxyip"] == "127.0.0.5")
                #expect(report["proxyport"] == "\(client.localPort)")
                #expect(!host.logs.contains("untrusted"))
            }
        }

        @Test("IPv6: by default ::1 is trusted")
        func ipv6LoopbackTrusted() async throws {
            try await withProxyHost(options: { _ in ["proxy_interfaces": .strings("::1")] }) { host in
                let client = try host.connect(host: "::1")
                try client.send(Headers.v1TCP4)
                let report = try client.report()
                #expect(report["ip"] == "203.0.113.7")
                #expect(report["proxyip"] == "::1")
                #expect(report["proxyport"] == "\(client.localPort)")
            }
        }

        @Test("IPv6: trust { \"127.0.0.1\" } does not cover ::1, and the refusal names the peer in brackets")
        func ipv6LoopbackNotCoveredByIPv4() async throws {
            try await withProxyHost(options: { _ in [
                "proxy_interfaces": .strings("::1"), "proxy_trusted_proxies": .strings("127.0.0.1"),
            ] }) { host in
                let client = try host.connect(host: "::1")
                try? client.send(Headers.v1TCP4)
                #expect(try client.readToEnd().isEmpty)
                #expect(host.logLine("untrusted", "peer=[::1]:\(client.localPort)") != nil)
            }
        }

        @Test("trust {} trusts everyone, and says so with a warning at start")
        func emptyListTrustsEveryone() async throws {
            try await withProxyHost(options: { _ in ["proxy_trusted_proxies": .table(ConfigTable())] }) { host in
                let warning = host.logLine("proxy_trusted_proxies is empty, so any peer may send a PROXY header and claim any address")
                #expect(warning?.hasPrefix("warning ") == true)
                #expect(host.logs.contains("trusted proxies: everyone"))
                #expect(host.fixture.server?.problems.all.contains { $0.contains("proxy_trusted_proxies is empty") } == true)
                let client = try host.connect(from: "127.0.0.5")
                try client.send(Headers.v1TCP4)
                let report = try client.report()
                #expect(report["ip"] == "203.0.113.7")
                #expect(report["proxyip"] == "127.0.0.5")
            }
        }
    }
}

import NetHost
import NetHostTestSupport
import Testing

extension NetProxyEndToEnd {
    /// The per-port outcome counts also go to swift-metrics, for a program that
    /// embeds NetHost with a metrics backend (README, "SIGUSR1 logs the counters").
    @Suite("swift-metrics")
    struct MetricsCounter {
        static let label = "nethost_proxy_connections_total"

        @Test("each connection counts once in nethost_proxy_connections_total, with its port and outcome")
        func connectionsByOutcome() async throws {
            let metrics = RecordingMetrics.shared  // before the host makes its counters
            try await withProxyHost { host in
                func total(_ outcome: String) -> Int64 {
                    metrics.total(Self.label, [("port", "\(host.port)"), ("outcome", outcome)])
                }
                #expect(try host.servesAGoodConnection())
                #expect(try host.servesAGoodConnection())
                let junk = try host.connect()
                try junk.send("GET / HTTP/1.1\r\n\r\n")
                #expect(try junk.readToEnd().isEmpty)
                let untrusted = try host.connect(from: "127.0.0.5")
                #expect(try untrusted.readToEnd().isEmpty)

                // A proxied connection is counted once its service has it, which its client
                // may see first; refused ones are counted before the close.
                #expect(host.fixture.eventually { total("proxied") == 2 }, "proxied=\(total("proxied"))")
                #expect(total("invalid") == 1)
                #expect(total("untrusted") == 1)
                // The rejected header by its reason, in a counter of its own.
                #expect(metrics.total("nethost_proxy_rejections_total", [
                    ("port", "\(host.port)"), ("outcome", "invalid"), ("reason", "badSignature"),
                ]) == 1)
                for outcome in ["local", "unknown_addresses", "shed", "timeout", "closed_early", "no_service", "hand_over_failed"] {
                    #expect(total(outcome) == 0, "\(outcome)")
                }
            }
        }
    }
}

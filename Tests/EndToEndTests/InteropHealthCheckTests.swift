import Foundation
import SocketTestSupport
import Testing

extension InteropTests {
    /// HAProxy's health checks against a PROXY port. With `send-proxy-v2` a check
    /// opens with a v2 LOCAL header: nethost must consume it, log it as a health
    /// check and serve the connection with its real addresses (HAProxy's own), never
    /// a client address. The checks here are `tcp-check`s that expect the report
    /// service's first line, so HAProxy marks the server UP only if nethost handed
    /// the check to the service with exactly those addresses.
    @Suite("HAProxy health checks")
    struct HealthChecks {
        struct Variant: Sendable, CustomTestStringConvertible {
            let sendProxy: HAProxyFixture.Configuration.SendProxy
            /// `check-send-proxy` on the server line (without it HAProxy sends the
            /// header on checks anyway, as the server line sends one).
            let checkSendProxy: Bool

            var testDescription: String {
                "\(sendProxy.rawValue) check\(checkSendProxy ? " check-send-proxy" : "")"
            }

            /// What the check's report starts with, as a PCRE for `tcp-check expect
            /// rstring`: the peer's own address and port as client and as proxy.
            func expectedReport(serverPort: Int) -> String {
                let header = sendProxy == .v1
                    // v1 has no LOCAL: HAProxy names the check connection itself.
                    ? "version=1 command=proxy family=inet source=127\\\\.0\\\\.0\\\\.1,\\\\k<p> destination=127\\\\.0\\\\.0\\\\.1,\(serverPort) "
                    : "version=2 command=local family=unspec source=none destination=none "
                return "^ip=127\\\\.0\\\\.0\\\\.1 port=(?<p>[0-9]+) proxyip=127\\\\.0\\\\.0\\\\.1 proxyport=\\\\k<p> serverport=\(serverPort) "
                    + header
            }
        }

        static let variants: [Variant] = [
            Variant(sendProxy: .v2, checkSendProxy: true),
            Variant(sendProxy: .v2, checkSendProxy: false),
            Variant(sendProxy: .v1, checkSendProxy: true),
        ]

        @Test("checks are served with HAProxy's own address; HAProxy marks the server UP; traffic flows", arguments: variants)
        func checksAreServedWithTheirOwnAddresses(_ variant: Variant) async throws {
            let port = try FreePort.allocate()
            let nethost = try await InteropNetHost.start(ports: [port])
            defer { nethost.stop() }
            var configuration = HAProxyFixture.Configuration(
                backendPort: port, sendProxy: variant.sendProxy,
                healthCheck: .init(sendProxy: variant.checkSendProxy, interval: .milliseconds(200), extraOptions: ["rise 1"]))
            configuration.extraFrontendLines = [interopHAProxyLogFormat]
            configuration.extraBackendLines = [
                "option log-health-checks",
                "timeout check 3s",
                "option tcp-check",
                "tcp-check expect rstring \"\(variant.expectedReport(serverPort: port))\"",
            ]
            let haproxy = try await HAProxyFixture.start(configuration)
            defer { haproxy.stop() }

            // HAProxy: the check expected the service's line, and got it.
            let passed = try await haproxy.process.waitForLogLine(
                containing: "Health check for server nethost_test_backend/backend succeeded, reason: Layer7 check passed")
            #expect(passed.hasSuffix(" UP."), "\(passed)")
            #expect(!haproxy.log.contains("Health check for server nethost_test_backend/backend failed"), "\(tail(haproxy.log))")

            // Normal traffic goes through meanwhile, with the client's address.
            let client = try TestClient(connectingTo: "127.0.0.1", port: haproxy.frontendPort, from: "127.0.0.5")
            let report = try InteropReport.read(from: client)
            #expect(report["ip"] == "127.0.0.5")
            #expect(report["port"] == "\(client.localPort)")
            #expect(report["command"] == "proxy")
            try expectEchoRoundTrip(client, count: 4 * 1024, seed: 31)
            client.close()

            // Once nethost has served a few checks, look at what it said about each.
            _ = try await poll(timeout: .seconds(10)) { () -> Bool? in
                InteropReport.logged(in: nethost.log).filter { $0["ip"] != "127.0.0.5" }.count >= 3 ? true : nil
            }
            let log = nethost.log
            let checks = InteropReport.logged(in: log).filter { $0["ip"] != "127.0.0.5" }
            try #require(checks.count >= 3, "nethost served \(checks.count) checks:\n\(tail(log))")
            for check in checks {
                // The service is shown the check connection's own addresses.
                #expect(check["ip"] == "127.0.0.1" && check["proxyip"] == "127.0.0.1", "\(check)")
                #expect(check["port"] != nil && check["port"] == check["proxyport"], "\(check)")
                #expect(check["serverport"] == "\(port)", "\(check)")
                let peer = "peer=127.0.0.1:\(check["port"] ?? "?") port=\(port)"
                if variant.sendProxy == .v1 {
                    #expect(check["version"] == "1" && check["command"] == "proxy", "\(check)")
                    #expect(check["source"] == "127.0.0.1,\(check["port"] ?? "?")", "\(check)")
                    #expect(log.contains("PROXY v1 header: client 127.0.0.1 port \(check["port"] ?? "?") module=net_proxy \(peer)"))
                } else {
                    #expect(check["version"] == "2" && check["command"] == "local", "\(check)")
                    #expect(check["source"] == "none" && check["tlvs"] == "0", "\(check)")
                    // nethost logs each as a health check, with the same peer.
                    #expect(log.contains(
                        "PROXY LOCAL header (a health check), serving with the connection's own addresses module=net_proxy \(peer)"),
                        "no LOCAL line for \(peer):\n\(tail(log))")
                }
            }
            #expect(!log.contains("untrusted"), "\(tail(log))")
            #expect(!log.contains("invalid PROXY header"), "\(tail(log))")
        }

        /// The README's own set-up, `server nethost ... send-proxy-v2 check`: plain
        /// layer-4 checks. HAProxy connects, sends a v2 LOCAL header and resets the
        /// connection at once; often the reset is in before nethost accepts, and the
        /// accepted socket has no peer address any more.
        ///
        /// Such a connection must not be reported as an untrusted sender (it once
        /// was: a missing peer address was treated as an untrusted one).
        @Test("plain layer-4 checks are not reported as untrusted peers")
        func layer4ChecksAreNotUntrusted() async throws {
            let port = try FreePort.allocate()
            let nethost = try await InteropNetHost.start(ports: [port])
            defer { nethost.stop() }
            let haproxy = try await HAProxyFixture.start(
                .init(backendPort: port, sendProxy: .v2, healthCheck: .init(sendProxy: true, interval: .milliseconds(50))))
            defer { haproxy.stop() }

            // Until nethost has counted 30 checks, whatever became of them: every connection
            // on a PROXY port ends in exactly one of its outcomes.
            var counts: [String: Int] = [:]
            _ = try await poll(timeout: .seconds(20), interval: .milliseconds(100)) { () -> Bool? in
                counts = nethost.proxyStatistics(port: port)
                return counts.filter { !$0.key.contains(".") }.values.reduce(0, +) >= 30 ? true : nil
            }
            let log = nethost.log
            #expect(counts.filter { !$0.key.contains(".") }.values.reduce(0, +) >= 30, "\(counts)\n\(tail(log))")
            // Each check is either read (its LOCAL header) or already gone at accept.
            #expect((counts["local"] ?? 0) + (counts["closed_early"] ?? 0) >= 30, "\(counts)")
            // A check that connects and resets before the accept completes has no peer
            // address; it must not be reported as an untrusted sender.
            #expect(counts["untrusted"] == 0, "\(counts)")
            let untrusted = log.split(separator: "\n").filter { $0.contains("untrusted") && !$0.contains(HostileHost.statisticsMessage) }
            #expect(untrusted.count == 0, "false warnings, e.g. \(untrusted.first ?? "")")
            #expect(!haproxy.log.contains("failed"), "\(tail(haproxy.log))")
        }
    }
}

extension NetHostFixture {
    /// The counters of the PROXY port `port` in the last statistics line nethost
    /// logged, by name (`local`, `closed_early`, `invalid.badSignature`, ...); then
    /// asks for a fresh line (SIGUSR1), for the next call. Empty before the first.
    func proxyStatistics(port: Int) -> [String: Int] {
        let marker = " port=\(port) "
        let line = self.log.split(separator: "\n").last { $0.contains(HostileHost.statisticsMessage) && $0.contains(marker) }
        self.process.send(signal: SIGUSR1)
        var counts: [String: Int] = [:]
        for pair in line?.split(separator: " ") ?? [] {
            guard let equals = pair.firstIndex(of: "="), let value = Int(pair[pair.index(after: equals)...]) else { continue }
            let key = String(pair[..<equals])
            if key != "port" { counts[key] = value }
        }
        return counts
    }
}

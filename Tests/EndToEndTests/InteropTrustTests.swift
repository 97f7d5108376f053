import Foundation
import SocketTestSupport
import Testing

extension InteropTests {
    /// `proxy_trusted_proxies` against a real sender: HAProxy connecting from an
    /// address that is not on the list is refused before anything reaches the
    /// service, the refusal is logged with HAProxy's address, and nethost goes on
    /// serving trusted senders.
    @Suite("Untrusted senders")
    struct UntrustedSenders {
        @Test("HAProxy from 127.0.0.1 is refused when only 127.0.0.9 is trusted; a trusted sender is still served")
        func untrustedHAProxyIsRefused() async throws {
            let refusedPort = try FreePort.allocate()
            let otherPort = try FreePort.allocate()
            let nethost = try await InteropNetHost.start(ports: [refusedPort, otherPort], trustedProxies: ["127.0.0.9"])
            defer { nethost.stop() }

            var untrusted = HAProxyFixture.Configuration(backendPort: refusedPort, sendProxy: .v2)
            untrusted.extraFrontendLines = [interopHAProxyLogFormat]
            // One attempt: when nethost's close overtakes the PROXY header HAProxy is
            // still sending, HAProxy counts a connection error and, by default,
            // retries 3 times, 1 s apart (each refused and logged).
            untrusted.extraBackendLines = ["retries 0"]
            let haproxy = try await HAProxyFixture.start(untrusted)
            defer { haproxy.stop() }

            let client = try TestClient(connectingTo: "127.0.0.1", port: haproxy.frontendPort, from: "127.0.0.5")
            try client.send("are you there?\n")
            // Closed without a byte: no report line, no echo.
            #expect(try client.readToEnd(timeout: .seconds(5)).isEmpty)

            let session = try await InteropSenderLog.haproxySession(haproxy, client: "127.0.0.5:\(client.localPort)")
            let haproxySource = try #require(session["backend_source"], "HAProxy's session: \(session)")
            #expect(haproxySource.hasPrefix("127.0.0.1:"))
            let refusal = try await nethost.waitForLogLine(containing: "untrusted")
            #expect(refusal.contains(
                "warn [nethost] refused a connection from an untrusted peer (not in proxy_trusted_proxies) module=net_proxy peer=\(haproxySource) port=\(refusedPort)"),
                "\(refusal)\nHAProxy:\n\(tail(haproxy.log))")
            #expect(InteropReport.logged(in: nethost.log).isEmpty, "the service saw a connection:\n\(tail(nethost.log))")

            // A trusted sender on the other port: HAProxy with `source 127.0.0.9`.
            var trusted = HAProxyFixture.Configuration(backendPort: otherPort, sendProxy: .v2, extraServerOptions: ["source 127.0.0.9"])
            trusted.extraFrontendLines = [interopHAProxyLogFormat]
            let trustedHAProxy = try await HAProxyFixture.start(trusted)
            defer { trustedHAProxy.stop() }
            let second = try TestClient(connectingTo: "127.0.0.1", port: trustedHAProxy.frontendPort, from: "127.0.0.5")
            let report = try InteropReport.read(from: second)
            try expectEchoRoundTrip(second, count: 4 * 1024, seed: 61)
            second.close()
            let trustedSession = try await InteropSenderLog.haproxySession(trustedHAProxy, client: "127.0.0.5:\(second.localPort)")
            #expect(trustedSession["backend_source"]?.hasPrefix("127.0.0.9:") == true, "\(trustedSession)")
            let proxyPort = try #require(InteropSenderLog.port(of: trustedSession["backend_source"]))
            #expect(report == InteropReport.proxied(
                version: 2, client: "127.0.0.5", clientPort: second.localPort,
                destination: "127.0.0.1", destinationPort: trustedHAProxy.frontendPort,
                proxy: "127.0.0.9", proxyPort: proxyPort, serverPort: otherPort))

            // And the refusing port still serves a trusted peer: a hand-written v1
            // header straight from 127.0.0.9.
            let direct = try TestClient(connectingTo: "127.0.0.1", port: refusedPort, from: "127.0.0.9")
            try direct.send("PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n")
            let directReport = try InteropReport.read(from: direct)
            #expect(directReport == InteropReport.proxied(
                version: 1, client: "203.0.113.7", clientPort: 51234, destination: "192.0.2.1", destinationPort: 443,
                proxy: "127.0.0.9", proxyPort: direct.localPort, serverPort: refusedPort))
            try expectEchoRoundTrip(direct, count: 1024, seed: 62)
            #expect(nethost.process.isRunning)
            // Exactly one refusal: HAProxy's connection.
            #expect(nethost.log.split(separator: "\n").filter { $0.contains("untrusted") }.count == 1, "\(tail(nethost.log))\nHAProxy:\n\(tail(haproxy.log))")
        }
    }
}

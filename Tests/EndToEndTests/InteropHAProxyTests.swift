import Foundation
import SocketTestSupport
import Testing

extension InteropTests {
    /// HAProxy in TCP mode sends each kind of PROXY header it has to nethost; the Lua
    /// service behind `net_proxy` must see the client HAProxy saw (127.0.0.5 and the
    /// client's own port), HAProxy itself as the proxy, and the header's TLVs; and
    /// the bytes after the header must reach it, and come back, unchanged.
    @Suite("HAProxy (TCP mode) in front of nethost")
    struct HAProxyTCP {
        /// One `server` line set-up, and the TLVs HAProxy adds for a plain-TCP client.
        struct Sender: Sendable, CustomTestStringConvertible {
            let sendProxy: HAProxyFixture.Configuration.SendProxy
            var proxyV2Options: [String] = []
            /// The frontend's `unique-id-format`, when the header carries a unique ID.
            var uniqueIDFormat: String?
            /// The TLV types of the header, in HAProxy's order.
            var tlvTypes: [Int] = []

            var testDescription: String {
                ([sendProxy.rawValue] + (proxyV2Options.isEmpty ? [] : ["proxy-v2-options \(proxyV2Options.joined(separator: ","))"]))
                    .joined(separator: " ")
            }

            var version: Int { sendProxy == .v1 ? 1 : 2 }

            /// `base` with the TLV fields of this sender's header for the client at `client:clientPort`.
            func withTLVFields(_ base: [String: String], client: String, clientPort: Int) -> [String: String] {
                var fields = base
                if tlvTypes.contains(0x20) {
                    // PP2_TYPE_SSL for a client that did not use TLS: flags 0, verify 0,
                    // no sub-TLV (no version, no CN).
                    fields = InteropReport.withSSL(fields, ["ssl": "false", "cert_conn": "false", "verified": "false"])
                }
                if tlvTypes.contains(0x03) { fields["crc32c"] = "present" }
                if tlvTypes.contains(0x05) { fields["unique_id"] = "interop-\(client):\(clientPort)" }
                fields["tlvs"] = "\(tlvTypes.count)"
                fields["tlv_types"] = tlvTypes.isEmpty ? "none" : tlvTypes.map(String.init).joined(separator: ",")
                return fields
            }
        }

        static let senders: [Sender] = [
            Sender(sendProxy: .v1),
            Sender(sendProxy: .v2),
            Sender(sendProxy: .v2, proxyV2Options: ["crc32c", "unique-id"], uniqueIDFormat: "interop-%ci:%cp", tlvTypes: [0x03, 0x05]),
            Sender(sendProxy: .v2SSL, tlvTypes: [0x20]),
            Sender(sendProxy: .v2SSLCN, tlvTypes: [0x20]),
        ]

        @Test("the service sees the client from 127.0.0.5 and its port; data round-trips", arguments: senders)
        func serviceSeesTheClient(_ sender: Sender) async throws {
            let port = try FreePort.allocate()
            let nethost = try await InteropNetHost.start(ports: [port])
            defer { nethost.stop() }
            var configuration = HAProxyFixture.Configuration(
                backendPort: port, sendProxy: sender.sendProxy, proxyV2Options: sender.proxyV2Options,
                uniqueIDFormat: sender.uniqueIDFormat)
            configuration.extraFrontendLines = [interopHAProxyLogFormat]
            let haproxy = try await HAProxyFixture.start(configuration)
            defer { haproxy.stop() }

            let client = try TestClient(connectingTo: "127.0.0.1", port: haproxy.frontendPort, from: "127.0.0.5")
            let report = try InteropReport.read(from: client)
            try expectEchoRoundTrip(client, seed: UInt64(sender.version * 10 + sender.tlvTypes.count))
            client.close()

            // HAProxy's own record of the session: where the client came from and
            // which source port HAProxy used towards nethost (the proxy's port).
            let session = try await InteropSenderLog.haproxySession(haproxy, client: "127.0.0.5:\(client.localPort)")
            #expect(session["backend_source"]?.hasPrefix("127.0.0.1:") == true)
            let proxyPort = try #require(InteropSenderLog.port(of: session["backend_source"]), "HAProxy's session: \(session)")

            let base = InteropReport.proxied(
                version: sender.version, client: "127.0.0.5", clientPort: client.localPort,
                destination: "127.0.0.1", destinationPort: haproxy.frontendPort,
                proxy: "127.0.0.1", proxyPort: proxyPort, serverPort: port)
            let expected = sender.withTLVFields(base, client: "127.0.0.5", clientPort: client.localPort)
            #expect(report == expected)
            // The same in nethost's own words.
            let line = try await nethost.waitForLogLine(containing: "PROXY v\(sender.version) header: client 127.0.0.5 port \(client.localPort) ")
            #expect(line.contains("peer=127.0.0.1:\(proxyPort) port=\(port)"), "\(line)")
            #expect(!nethost.log.contains("untrusted"), "nethost:\n\(tail(nethost.log))")
        }

        /// A client over IPv6 (from ::1, the only IPv6 loopback address). HAProxy
        /// reaches nethost over IPv4, where the proxy's address differs from the
        /// client's, and over IPv6, where only the ports tell them apart.
        @Test("a client over IPv6, HAProxy to nethost over IPv4 or IPv6", arguments: ["127.0.0.1", "::1"])
        func ipv6Client(backendHost: String) async throws {
            let port = try FreePort.allocate()
            let nethost = try await InteropNetHost.start(ports: [port])
            defer { nethost.stop() }
            var configuration = HAProxyFixture.Configuration(
                backendPort: port, sendProxy: .v2, frontendHosts: ["::1"], backendHost: backendHost)
            configuration.extraFrontendLines = [interopHAProxyLogFormat]
            let haproxy = try await HAProxyFixture.start(configuration)
            defer { haproxy.stop() }

            let client = try TestClient(connectingTo: "::1", port: haproxy.frontendPort, from: "::1")
            let report = try InteropReport.read(from: client)
            try expectEchoRoundTrip(client, count: 8 * 1024, seed: 6)
            client.close()

            let session = try await InteropSenderLog.haproxySession(haproxy, client: "::1:\(client.localPort)")
            #expect(session["backend_source"]?.hasPrefix("\(backendHost):") == true, "\(session)")
            let proxyPort = try #require(InteropSenderLog.port(of: session["backend_source"]), "HAProxy's session: \(session)")
            #expect(report == InteropReport.proxied(
                version: 2, family: "inet6", client: "::1", clientPort: client.localPort,
                destination: "::1", destinationPort: haproxy.frontendPort,
                proxy: backendHost, proxyPort: proxyPort, serverPort: port))
        }
    }
}

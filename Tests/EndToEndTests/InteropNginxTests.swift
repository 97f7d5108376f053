import Foundation
import SocketTestSupport
import Testing

extension InteropTests {
    /// nginx's stream module with `proxy_protocol on;` (v1 only) in front of nethost.
    @Suite("nginx stream in front of nethost")
    struct NginxStream {
        struct Route: Sendable, CustomTestStringConvertible {
            /// Where nginx listens and the client connects from.
            let listen: String
            let client: String
            /// nginx's upstream address (nethost listens on 127.0.0.1 and ::1).
            let upstream: String

            var testDescription: String { "client \(client) → nginx \(listen) → nethost \(upstream)" }
            var family: String { client.contains(":") ? "inet6" : "inet" }
        }

        static let routes = [
            Route(listen: "127.0.0.1", client: "127.0.0.5", upstream: "127.0.0.1"),
            // ::1 is the only IPv6 loopback address: over IPv4 to nethost the proxy's
            // address differs from the client's; over IPv6 only the ports do.
            Route(listen: "::1", client: "::1", upstream: "127.0.0.1"),
            Route(listen: "::1", client: "::1", upstream: "::1"),
        ]

        @Test("the service sees the client's exact address and port; data round-trips", arguments: routes)
        func serviceSeesTheClient(_ route: Route) async throws {
            let port = try FreePort.allocate()
            let nethost = try await InteropNetHost.start(ports: [port])
            defer { nethost.stop() }
            let nginx = try await NginxFixture.start(
                .init(upstreamPort: port, listenHosts: [route.listen], upstreamHost: route.upstream))
            defer { nginx.stop() }

            let client = try TestClient(connectingTo: route.listen, port: nginx.listenPort, from: route.client)
            let report = try InteropReport.read(from: client)
            try expectEchoRoundTrip(client, seed: route.family == "inet" ? 51 : route.upstream.contains(":") ? 52 : 53)

            // nginx's own record of its connection to nethost: the proxy's address.
            let clientEndpoint = hostPort(route.client, client.localPort)
            let upstreamSource = try await InteropSenderLog.nginxUpstreamSource(nginx, client: clientEndpoint)
            #expect(upstreamSource.hasPrefix(hostPort(route.upstream, 0).dropLast(1)), "\(upstreamSource)")
            let proxyPort = try #require(InteropSenderLog.port(of: upstreamSource), "nginx's upstream source: \(upstreamSource)")
            client.close()

            #expect(report == InteropReport.proxied(
                version: 1, family: route.family, client: route.client, clientPort: client.localPort,
                destination: route.listen, destinationPort: nginx.listenPort,
                proxy: route.upstream, proxyPort: proxyPort, serverPort: port))
            let line = try await nethost.waitForLogLine(containing: "PROXY v1 header: client \(route.client) port \(client.localPort) ")
            #expect(line.contains("peer=\(hostPort(route.upstream, proxyPort)) port=\(port)"), "\(line)")
        }
    }
}

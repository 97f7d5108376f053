import Foundation
import NetHost
import NetHostTestSupport
import ProxyModule
import Testing

extension NetProxyEndToEnd {
    /// TLS after the PROXY header, on the same port: what a load balancer in TCP
    /// mode sends in front of a direct-TLS service. mod_net_proxy cannot do this.
    @Suite("TLS after the header")
    struct ProxyTLSTests {
        static let secureService = """
            local listener = {}
            function listener.onconnect(conn)
                conn:write(("client=%s:%d tls=%s\\n"):format(conn:ip(), conn:port(), tostring(conn:ssl())))
            end
            function listener.onincoming(conn, data) conn:write(data) end
            module:provides("net", { name = "secure", listener = listener, encryption = "ssl" })
            """

        @Test("a PROXY v1 header in clear, then a TLS handshake: the TLS service sees the header's client")
        func tlsAfterHeader() async throws {
            let port = try FreePort.allocate()
            let fixture = try HostFixture(modules: ["secure": Self.secureService])
            let certificate = try TestCertificate(in: fixture.directory)
            try await fixture.start(options: [
                "modules_enabled": .strings("net_proxy", "secure"),
                "proxy_port_mappings": .table(ConfigTable(map: [.integer(port): .string("secure")])),
                "ssl": .table(ConfigTable(map: [
                    .string("certificate"): .string(certificate.certificatePath), .string("key"): .string(certificate.keyPath),
                ])),
            ], natives: BuiltinModules.all + ProxyModules.all)
            let client = try await TLSTestClient.connect(
                host: "127.0.0.1", port: port, preamble: Array("PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n".utf8)
            )
            let received = try await client.exchange("encrypted payload\n", until: "encrypted payload\n")
            #expect(received == "client=203.0.113.7:51234 tls=true\nencrypted payload\n")
            await client.shutdown()
            await fixture.stop()
        }

        static let proxiedService = """
            local listener = {}
            function listener.onconnect(conn)
                conn:write(("client=%s:%d tls=%s proxy=%s\\n"):format(conn:ip(), conn:port(), tostring(conn:ssl()), tostring(conn:proxyip())))
            end
            function listener.onincoming(conn, data) conn:write(data) end
            function listener.ondisconnect(conn, err) module:log("info", "ondisconnect %s:%d %s", conn:ip(), conn:port(), tostring(err)) end
            module:provides("net", { name = "secure", listener = listener, encryption = "ssl" })
            """

        @Test("issue 14: TLS after the header runs off the Lua loop: the handshake completes while that loop is held; then the Lua service sees the header's client and the proxy")
        func tlsAfterHeaderOffTheLuaLoop() async throws {
            let port = try FreePort.allocate()
            let fixture = try HostFixture(modules: ["secure": Self.proxiedService])
            let certificate = try TestCertificate(in: fixture.directory)
            let server = try await fixture.start(options: [
                "modules_enabled": .strings("net_proxy", "secure"),
                "proxy_port_mappings": .table(ConfigTable(map: [.integer(port): .string("secure")])),
                "ssl": .table(ConfigTable(map: [
                    .string("certificate"): .string(certificate.certificatePath), .string("key"): .string(certificate.keyPath),
                ])),
            ], natives: BuiltinModules.all + ProxyModules.all)
            let gate = DispatchSemaphore(value: 0)
            // Held until the handshake has had its chance (a continuation, not a future: a
            // future's callback would be registered through the held loop itself).
            await withCheckedContinuation { (held: CheckedContinuation<Void, Never>) in
                server.luaLoop.execute {
                    held.resume()
                    gate.wait()
                }
            }
            let client: TLSProbeClient
            do {
                client = try await TLSProbeClient.connect(
                    port: port, preamble: Array("PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n".utf8)
                )
            } catch {
                gate.signal()
                throw error
            }
            let handshook = await client.waitForHandshake(timeout: .seconds(5))
            gate.signal()
            #expect(handshook, "the TLS handshake after the header needed the Lua loop")
            try await client.send("payload\n")
            #expect(await client.waitForText("payload\n"))
            #expect(client.receivedText == "client=203.0.113.7:51234 tls=true proxy=127.0.0.1\npayload\n")
            await client.shutdown()
            #expect(await fixture.waitUntil { fixture.logs.contains("ondisconnect 203.0.113.7:51234 nil") }, "\(fixture.logs.all)")
            await fixture.stop()
        }

        @Test("a failed handshake after the header is logged at info with the client the header named and the proxy, in words")
        func failedHandshakeNamesTheClient() async throws {
            let port = try FreePort.allocate()
            let fixture = try HostFixture(modules: ["secure": Self.secureService])
            let certificate = try TestCertificate(in: fixture.directory)
            try await fixture.start(options: [
                "modules_enabled": .strings("net_proxy", "secure"),
                "proxy_port_mappings": .table(ConfigTable(map: [.integer(port): .string("secure")])),
                "ssl": .table(ConfigTable(map: [
                    .string("certificate"): .string(certificate.certificatePath), .string("key"): .string(certificate.keyPath),
                ])),
            ], natives: BuiltinModules.all + ProxyModules.all)
            let client = try TestClient(connectingTo: "127.0.0.1", port: port)
            try client.send("PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
            _ = try? client.readToEnd()
            let expected = "info TLS handshake failed: the client sent a plain HTTP request, not a TLS handshake"
            #expect(fixture.eventually { fixture.logs.contains(expected) }, "\(fixture.logs.all)")
            let line = fixture.logs.all.first { $0.hasPrefix(expected) } ?? ""
            #expect(line.contains("peer=203.0.113.7") && line.contains("proxy=127.0.0.1") && line.contains("service=secure"), "\(line)")
            await fixture.stop()
        }

        @Test("a hand-over to a TLS service without a certificate is counted as hand_over_failed, not proxied, and logged once per peer")
        func failedHandOverIsCountedApart() async throws {
            let port = try FreePort.allocate()
            let fixture = try HostFixture(modules: ["secure": Self.secureService])
            let server = try await fixture.start(options: [
                "modules_enabled": .strings("net_proxy", "secure"),
                "proxy_port_mappings": .table(ConfigTable(map: [.integer(port): .string("secure")])),
            ], natives: BuiltinModules.all + ProxyModules.all)
            for _ in 1...3 {
                let client = try TestClient(connectingTo: "127.0.0.1", port: port)
                try client.send("PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n")
                #expect(try client.readToEnd().isEmpty)
            }
            server.logStatistics()
            #expect(fixture.eventually { fixture.logs.contains("PROXY connections by outcome") })
            let counts = fixture.logs.all.first { $0.contains("PROXY connections by outcome") } ?? ""
            #expect(counts.contains(" hand_over_failed=3 "), "\(counts)")
            #expect(counts.contains(" proxied=0 "), "\(counts)")
            let lines = fixture.logs.all.filter { $0.contains("could not hand the connection to service 'secure'") }
            #expect(lines.count == 1, "\(lines)")
            #expect(lines.first?.contains("peer=127.0.0.1") == true, "\(lines)")
            await fixture.stop()
        }
    }
}

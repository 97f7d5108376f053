import NetHost
import NetHostTestSupport
import ProxyModule
import ProxyProtocol
import Testing

/// Checks every field of `expected` against the report, naming the field that differs.
private func expectFields(
    _ report: [String: String], _ expected: [String: String], sourceLocation: SourceLocation = #_sourceLocation
) {
    for (key, value) in expected.sorted(by: { $0.key < $1.key }) {
        #expect(report[key] == value, "field \(key)", sourceLocation: sourceLocation)
    }
}

extension NetProxyEndToEnd {
    /// A connection with a PROXY header reaches the mapped service with the
    /// client's address, the proxy's address and the whole header.
    @Suite("Hand-over to the mapped service")
    struct HandOver {
        @Test("v1 TCP4: the service sees the client's address; the proxy is the TCP peer")
        func v1TCP4() async throws {
            try await withProxyHost { host in
                let client = try host.connect()
                try client.send(Headers.v1TCP4)
                expectFields(try client.report(), [
                    "ip": "203.0.113.7", "port": "51234", "serverport": "\(host.port)",
                    "proxyip": "127.0.0.1", "proxyport": "\(client.localPort)",
                    "version": "1", "command": "proxy", "family": "inet", "transport": "stream",
                    "source": "203.0.113.7,51234", "destination": "192.0.2.1,443",
                    "authority": "nil", "ssl": "nil", "tlvs": "none",
                ])
                try client.send("ping\n")
                #expect(try client.readLine() == "ping")
            }
        }

        @Test("v1 TCP6: addresses in any valid spelling arrive in RFC 5952 form")
        func v1TCP6() async throws {
            try await withProxyHost { host in
                let client = try host.connect()
                try client.send("PROXY TCP6 2001:DB8:0:0:0:0:0:7 2001:db8::1 51234 443\r\n")
                expectFields(try client.report(), [
                    "ip": "2001:db8::7", "port": "51234", "serverport": "\(host.port)",
                    "proxyip": "127.0.0.1", "proxyport": "\(client.localPort)",
                    "version": "1", "family": "inet6", "transport": "stream",
                    "source": "2001:db8::7,51234", "destination": "2001:db8::1,443",
                ])
            }
        }

        @Test("v1 UNKNOWN, short and with the spec's longest line: the connection's real addresses", arguments: [
            "PROXY UNKNOWN\r\n",
            "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
        ])
        func v1Unknown(header: String) async throws {
            #expect(header.utf8.count <= 107)
            try await withProxyHost { host in
                let client = try host.connect()
                try client.send(header)
                expectFields(try client.report(), [
                    "ip": "127.0.0.1", "port": "\(client.localPort)", "serverport": "\(host.port)",
                    "proxyip": "127.0.0.1", "proxyport": "\(client.localPort)",
                    "version": "1", "command": "proxy", "family": "unspec", "transport": "unspec",
                    "source": "nil", "destination": "nil",
                ])
                try client.send("after unknown\n")
                #expect(try client.readLine() == "after unknown")
            }
        }

        @Test("v1 ports 0 and 65535 are accepted", arguments: [(0, 65535), (65535, 0)])
        func v1PortBounds(source: Int, destination: Int) async throws {
            try await withProxyHost { host in
                let client = try host.connect()
                try client.send("PROXY TCP4 198.51.100.1 192.0.2.1 \(source) \(destination)\r\n")
                expectFields(try client.report(), [
                    "ip": "198.51.100.1", "port": "\(source)",
                    "source": "198.51.100.1,\(source)", "destination": "192.0.2.1,\(destination)",
                ])
            }
        }

        @Test("v2 PROXY INET")
        func v2Inet() async throws {
            try await withProxyHost { host in
                let client = try host.connect()
                try client.send(try Headers.v2(Headers.inet))
                expectFields(try client.report(), [
                    "ip": "203.0.113.7", "port": "51234", "serverport": "\(host.port)",
                    "proxyip": "127.0.0.1", "proxyport": "\(client.localPort)",
                    "version": "2", "command": "proxy", "family": "inet", "transport": "stream",
                    "source": "203.0.113.7,51234", "destination": "192.0.2.1,443", "tlvs": "none",
                ])
            }
        }

        @Test("v2 PROXY INET6")
        func v2Inet6() async throws {
            try await withProxyHost { host in
                let client = try host.connect()
                try client.send(try Headers.v2(Headers.inet6))
                expectFields(try client.report(), [
                    "ip": "2001:db8::7", "port": "51234", "proxyip": "127.0.0.1", "proxyport": "\(client.localPort)",
                    "version": "2", "command": "proxy", "family": "inet6", "transport": "stream",
                    "source": "2001:db8::7,51234", "destination": "2001:db8::1,443",
                ])
            }
        }

        @Test("v2 LOCAL as HAProxy's health checks send it (UNSPEC, no body): the real addresses")
        func v2LocalHealthCheck() async throws {
            try await withProxyHost { host in
                let client = try host.connect()
                // What HAProxy sends for `check send-proxy-v2`: 16 bytes, LOCAL, AF_UNSPEC, length 0.
                try client.send(Headers.v2Prefix(0x20, 0x00, length: 0))
                expectFields(try client.report(), [
                    "ip": "127.0.0.1", "port": "\(client.localPort)", "serverport": "\(host.port)",
                    "proxyip": "127.0.0.1", "proxyport": "\(client.localPort)",
                    "version": "2", "command": "local", "family": "unspec", "transport": "unspec",
                    "source": "nil", "destination": "nil",
                ])
            }
        }

        @Test("v2 LOCAL with an address block: the block is kept in the header, the real addresses are used")
        func v2LocalWithAddresses() async throws {
            try await withProxyHost { host in
                let client = try host.connect()
                try client.send(try Headers.v2(command: .local, Headers.inet))
                expectFields(try client.report(), [
                    "ip": "127.0.0.1", "port": "\(client.localPort)", "proxyip": "127.0.0.1",
                    "command": "local", "family": "inet", "source": "203.0.113.7,51234",
                ])
            }
        }

        @Test("v2 LOCAL with an undefined family and a body that is no address block: accepted, as the spec demands")
        func v2LocalUnreadableBody() async throws {
            try await withProxyHost { host in
                let client = try host.connect()
                try client.send(Headers.v2Prefix(0x20, 0x41, length: 5) + [1, 2, 3, 4, 5] + Array("data\n".utf8))
                expectFields(try client.report(), [
                    "ip": "127.0.0.1", "port": "\(client.localPort)", "proxyip": "127.0.0.1",
                    "command": "local", "family": "unspec", "source": "nil", "tlvs": "none",
                ])
                #expect(try client.readLine() == "data")
            }
        }

        @Test("v2 PROXY UNSPEC: the real addresses")
        func v2Unspec() async throws {
            try await withProxyHost { host in
                let client = try host.connect()
                try client.send(try Headers.v2(transport: .unspecified, .unspecified))
                expectFields(try client.report(), [
                    "ip": "127.0.0.1", "port": "\(client.localPort)", "proxyip": "127.0.0.1",
                    "proxyport": "\(client.localPort)",
                    "version": "2", "command": "proxy", "family": "unspec", "transport": "unspec",
                    "source": "nil", "destination": "nil",
                ])
            }
        }

        @Test("v2 PROXY UNIX: the real addresses, the socket paths in the header")
        func v2Unix() async throws {
            try await withProxyHost { host in
                let client = try host.connect()
                try client.send(try Headers.v2(.unix(
                    source: Array("/run/haproxy/client.sock".utf8), destination: Array("/run/app.sock".utf8))))
                expectFields(try client.report(), [
                    "ip": "127.0.0.1", "port": "\(client.localPort)", "proxyip": "127.0.0.1",
                    "version": "2", "command": "proxy", "family": "unix", "transport": "stream",
                    "source": "/run/haproxy/client.sock,nil", "destination": "/run/app.sock,nil",
                ])
            }
        }

        static let sslInfo = ProxySSLInfo(
            client: [.ssl, .certificateOnConnection], verify: 0, version: "TLSv1.3", commonName: "alice",
            cipher: "TLS_AES_128_GCM_SHA256")

        static let tlvs: [ProxyTLV] = [
            ProxyTLV(.alpn(Array("h2".utf8))),
            ProxyTLV(.authority("example.com")),
            ProxyTLV(.uniqueID([0xDE, 0xAD, 0xBE, 0xEF, 0x00, 0x01])),
            ProxyTLV(.ssl(sslInfo)),
        ]

        @Test("v2 TLVs (ALPN, AUTHORITY, UNIQUE_ID, SSL, a valid CRC32C) are all in conn:proxyheader()")
        func v2TLVs() async throws {
            let header = try Headers.v2(Headers.inet, tlvs: Self.tlvs, checksum: true)
            // The encoder appends the CRC32C TLV last: its value is the header's final 4 bytes.
            let checksum = header.suffix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            try await withProxyHost { host in
                let client = try host.connect()
                try client.send(header)
                expectFields(try client.report(), [
                    "ip": "203.0.113.7", "port": "51234",
                    "authority": "example.com", "alpn": "h2", "unique_id": "deadbeef0001",
                    "ssl.version": "TLSv1.3", "ssl.cn": "alice", "ssl.verified": "true",
                    "crc32c": "\(checksum)",
                    "tlvs": [
                        "1:alpn:6832",
                        "2:authority:\(hex(Array("example.com".utf8)))",
                        "5:unique_id:deadbeef0001",
                        "32:ssl:\(hex(Self.sslInfo.encodedValue))",
                        "3:crc32c:\(hex(Array(header.suffix(4))))",
                    ].joined(separator: ","),
                ])
            }
        }

        @Test("a Swift service gets the header as a typed ProxyHeader with the same content as Lua's table")
        func swiftService() async throws {
            let header = try Headers.v2(Headers.inet, tlvs: Self.tlvs, checksum: true)
            try await withProxyHost(services: [ReportService.name, OriginProbeModule.name]) { host in
                let lua = try host.connect(port: host.ports[0])
                try lua.send(header)
                let luaReport = try lua.report()
                let swift = try host.connect(port: host.ports[1])
                try swift.send(header)
                let swiftReport = try swift.report()

                #expect(luaReport["service"] == ReportService.name)
                #expect(swiftReport["service"] == OriginProbeModule.name)
                #expect(swiftReport["authority"] == "example.com")
                #expect(swiftReport["ip"] == "203.0.113.7")
                #expect(swiftReport["serverport"] == "\(host.ports[1])")
                #expect(swiftReport["proxyport"] == "\(swift.localPort)")
                // Only who wrote the line and the ends of the two TCP connections differ.
                let connectionFields: Set = ["service", "serverport", "proxyport"]
                #expect(swiftReport.count == luaReport.count)
                #expect(swiftReport.filter { !connectionFields.contains($0.key) }
                    == luaReport.filter { !connectionFields.contains($0.key) })
                try swift.send("typed\n")
                #expect(try swift.readLine() == "typed")
            }
        }

        @Test("with two AUTHORITY TLVs, Lua's authority is the first one, as ProxyHeader.authority is")
        func duplicateAuthority() async throws {
            let header = try Headers.v2(Headers.inet, tlvs: [
                ProxyTLV(.authority("first.example")), ProxyTLV(.authority("second.example")),
            ])
            try await withProxyHost(services: [ReportService.name, OriginProbeModule.name]) { host in
                let lua = try host.connect(port: host.ports[0])
                try lua.send(header)
                let swift = try host.connect(port: host.ports[1])
                try swift.send(header)
                let swiftReport = try swift.report()
                let luaReport = try lua.report()
                #expect(swiftReport["service"] == OriginProbeModule.name)
                #expect(swiftReport["authority"] == "first.example")
                #expect(luaReport["service"] == ReportService.name)
                #expect(luaReport["authority"] == "first.example")
            }
        }
    }
}

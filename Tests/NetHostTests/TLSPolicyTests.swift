import Foundation
import NetHostTestSupport
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging

/// Prosody's `ssl` options on real sockets, with `openssl s_client` as the client:
/// which protocol versions and ciphers are accepted, which certificate is served
/// (global `ssl`, `NAME_ssl`, a host's `ssl` and the `certificates` folder by SNI),
/// reload, and what is said when something is wrong.
@Suite("TLS policy", .serialized)
struct TLSPolicyTests {
    /// Two direct-TLS services that log their callbacks.
    static let services = """
        local listener = {}
        function listener.onconnect(conn) module:log("info", "onconnect %s", conn:ip()) end
        function listener.ondisconnect(conn, err) module:log("info", "ondisconnect: %s", tostring(err)) end
        module:provides("net", { name = "secure", listener = listener, encryption = "ssl" })
        module:provides("net", { name = "other", listener = listener, encryption = "ssl" })
        """

    static func ssl(_ certificate: TestCertificate, _ extra: [String: ConfigValue] = [:]) -> ConfigValue {
        var map: [ConfigKey: ConfigValue] = [.string("certificate"): .string(certificate.certificatePath), .string("key"): .string(certificate.keyPath)]
        for (key, value) in extra { map[.string(key)] = value }
        return .table(ConfigTable(map: map))
    }

    static func ssl(_ extra: [String: ConfigValue]) -> ConfigValue {
        .table(ConfigTable(map: Dictionary(uniqueKeysWithValues: extra.map { (.string($0.key), $0.value) })))
    }

    private func lines(_ fixture: HostFixture, containing text: String) -> [String] {
        fixture.logs.all.filter { $0.contains(text) }
    }

    @Test("by default TLS 1.0, TLS 1.1 and ciphers without forward secrecy are refused and onconnect does not run; TLS 1.2 and 1.3 are accepted")
    func defaultPolicy() async throws {
        let fixture = try HostFixture(modules: ["svc": Self.services])
        let certificate = try TestCertificate(in: fixture.directory, commonName: "default.test")
        try await fixture.start(options: ["modules_enabled": .strings("svc"), "secure_ports": .list(.integer(0)), "ssl": Self.ssl(certificate)])
        let port = try fixture.port(of: "secure")
        let refused = [
            ["-tls1"] + OpenSSLHandshake.allowOldProtocols,
            ["-tls1_1"] + OpenSSLHandshake.allowOldProtocols,
            ["-tls1_2", "-cipher", "AES128-SHA"],
            ["-tls1_2", "-cipher", "AES256-GCM-SHA384"],
        ]
        for arguments in refused {
            let handshake = try OpenSSLHandshake.run(port: port, arguments)
            #expect(!handshake.succeeded, "\(arguments): \(handshake)")
        }
        let tls12 = try OpenSSLHandshake.run(port: port, ["-tls1_2"])
        #expect(tls12.negotiatedProtocol == "TLSv1.2", "\(tls12)")
        #expect(tls12.cipher?.hasPrefix("ECDHE-") == true, "\(tls12)")
        let tls13 = try OpenSSLHandshake.run(port: port, ["-tls1_3"])
        #expect(tls13.negotiatedProtocol == "TLSv1.3", "\(tls13)")
        // Every connection has ended once each has had its ondisconnect; only the two accepted had onconnect.
        #expect(fixture.eventually { lines(fixture, containing: "ondisconnect:").count == 6 }, "\(fixture.logs.all)")
        #expect(lines(fixture, containing: "onconnect ").count == 2, "\(fixture.logs.all)")
        await fixture.stop()
    }

    @Test("a failed handshake reaches ondisconnect and the log in words (no build paths), logged at info with the client's address")
    func handshakeFailureInWords() async throws {
        let fixture = try HostFixture(modules: ["svc": Self.services])
        let certificate = try TestCertificate(in: fixture.directory)
        try await fixture.start(options: ["modules_enabled": .strings("svc"), "secure_ports": .list(.integer(0)), "ssl": Self.ssl(certificate)])
        let port = try fixture.port(of: "secure")

        _ = try OpenSSLHandshake.run(port: port, ["-tls1"] + OpenSSLHandshake.allowOldProtocols)
        #expect(fixture.eventually { !lines(fixture, containing: "ondisconnect:").isEmpty })
        let version = "TLS handshake failed: the client offers no TLS version NetHost accepts (TLS 1.2 and 1.3)"
        #expect(lines(fixture, containing: "ondisconnect: \(version)").count == 1, "\(fixture.logs.all)")
        // Besides the service's own line and the connection's debug line, one line from NetHost.
        let logged = lines(fixture, containing: version).filter { !$0.contains("ondisconnect") && !$0.hasPrefix("debug ") }
        #expect(logged.count == 1 && logged.first?.hasPrefix("info ") == true && logged.first?.contains("peer=127.0.0.1") == true, "\(fixture.logs.all)")

        _ = try OpenSSLHandshake.run(port: port, ["-tls1_2", "-cipher", "AES128-SHA"])
        #expect(fixture.eventually { lines(fixture, containing: "ondisconnect:").count == 2 })
        #expect(lines(fixture, containing: "ondisconnect: TLS handshake failed: no cipher in common with the client").count == 1,
                "\(fixture.logs.all)")
        for line in fixture.logs.all where line.contains("handshake") {
            #expect(!line.contains("checkouts") && !line.contains(".cc:"), "a build path in: \(line)")
        }
        await fixture.stop()
    }

    @Test("ssl.protocol is honoured: \"tlsv1_3\" refuses TLS 1.2; Prosody's \"tlsv1_2+\" with ssl.ciphers keeps to that cipher")
    func protocolAndCiphers() async throws {
        let fixture = try HostFixture(modules: ["svc": Self.services])
        let certificate = try TestCertificate(in: fixture.directory)
        try await fixture.start(options: [
            "modules_enabled": .strings("svc"),
            "secure_ports": .list(.integer(0)), "other_ports": .list(.integer(0)),
            "ssl": Self.ssl(certificate, ["protocol": .string("tlsv1_3")]),
            "other_ssl": Self.ssl(["protocol": .string("tlsv1_2+"), "ciphers": .string("ECDHE-RSA-AES256-GCM-SHA384")]),
        ])
        let only13 = try fixture.port(of: "secure")
        #expect(!(try OpenSSLHandshake.run(port: only13, ["-tls1_2"])).succeeded)
        #expect(try OpenSSLHandshake.run(port: only13, ["-tls1_3"]).negotiatedProtocol == "TLSv1.3")

        let oneCipher = try fixture.port(of: "other")
        let refused = try OpenSSLHandshake.run(port: oneCipher, ["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"])
        #expect(!refused.succeeded, "\(refused)")
        let accepted = try OpenSSLHandshake.run(port: oneCipher, ["-tls1_2"])
        #expect(accepted.cipher == "ECDHE-RSA-AES256-GCM-SHA384", "\(accepted)")
        await fixture.stop()
    }

    @Test("NAME_ssl gives its service its own certificate and settings; other services keep the global ssl")
    func serviceSSL() async throws {
        let fixture = try HostFixture(modules: ["svc": Self.services])
        let global = try TestCertificate(in: fixture.directory, commonName: "global.test", name: "global")
        let own = try TestCertificate(in: fixture.directory, commonName: "other.test", name: "other")
        try await fixture.start(options: [
            "modules_enabled": .strings("svc"),
            "secure_ports": .list(.integer(0)), "other_ports": .list(.integer(0)),
            "ssl": Self.ssl(global),
            "other_ssl": Self.ssl(own, ["protocol": .string("tlsv1_3")]),
        ])
        let secure = try OpenSSLHandshake.run(port: try fixture.port(of: "secure"), ["-tls1_2"])
        #expect(secure.succeeded && secure.subject == "CN = global.test", "\(secure)")
        let other = try fixture.port(of: "other")
        let other13 = try OpenSSLHandshake.run(port: other, ["-tls1_3"])
        #expect(other13.succeeded && other13.subject == "CN = other.test", "\(other13)")
        #expect(!(try OpenSSLHandshake.run(port: other, ["-tls1_2"])).succeeded)
        await fixture.stop()
    }

    @Test("a host's ssl and the certificates folder give each host its certificate by the name the client asks for (SNI)")
    func hostCertificatesByName() async throws {
        let fixture = try HostFixture(modules: ["svc": Self.services])
        let fallback = try TestCertificate(in: fixture.directory, commonName: "default.test", name: "default")
        let hostA = try TestCertificate(in: fixture.directory, commonName: "a.example", name: "a")
        try FileManager.default.createDirectory(atPath: fixture.directory + "/certs", withIntermediateDirectories: true)
        _ = try TestCertificate(in: fixture.directory + "/certs", commonName: "b.example", name: "b.example")
        try await fixture.start(
            options: [
                "modules_enabled": .strings("svc"), "secure_ports": .list(.integer(0)),
                "ssl": Self.ssl(fallback), "certificates": .string("certs"),
            ],
            hosts: ["a.example": ["ssl": Self.ssl(hostA)], "b.example": [:], "c.example": [:]]
        )
        let port = try fixture.port(of: "secure")
        for (name, subject) in [("a.example", "CN = a.example"), ("b.example", "CN = b.example"), ("c.example", "CN = default.test")] {
            let handshake = try OpenSSLHandshake.run(port: port, ["-servername", name])
            #expect(handshake.succeeded && handshake.subject == subject, "\(name): \(handshake)")
        }
        let unnamed = try OpenSSLHandshake.run(port: port, ["-noservername"])
        #expect(unnamed.subject == "CN = default.test", "\(unnamed)")
        await fixture.stop()
    }

    @Test("without ssl, a direct-TLS service is served with its own files from the certificates folder, as Prosody finds them")
    func serviceCertificateFromFolder() async throws {
        let fixture = try HostFixture(modules: ["svc": Self.services])
        try FileManager.default.createDirectory(atPath: fixture.directory + "/certs", withIntermediateDirectories: true)
        _ = try TestCertificate(in: fixture.directory + "/certs", commonName: "secure.service", name: "secure")
        try await fixture.start(options: ["modules_enabled": .strings("svc"), "secure_ports": .list(.integer(0))])
        let handshake = try OpenSSLHandshake.run(port: try fixture.port(of: "secure"))
        #expect(handshake.succeeded && handshake.subject == "CN = secure.service", "\(handshake)")
        await fixture.stop()
    }

    @Test("reload reads the certificate again: a renewed one is served to new connections; a broken one leaves the last good one in force")
    func reloadRenewsCertificate() async throws {
        let fixture = try HostFixture(modules: ["svc": Self.services])
        let certificate = try TestCertificate(in: fixture.directory, commonName: "old.test")
        let options: [String: ConfigValue] = [
            "modules_enabled": .strings("svc"), "secure_ports": .list(.integer(0)), "ssl": Self.ssl(certificate),
        ]
        let server = try await fixture.start(options: options)
        let port = try fixture.port(of: "secure")
        #expect(try OpenSSLHandshake.run(port: port).subject == "CN = old.test")

        _ = try TestCertificate(in: fixture.directory, commonName: "new.test")  // renewed in place
        try await server.reload(HostFixture.options(options))
        let renewed = try OpenSSLHandshake.run(port: port)
        #expect(renewed.subject == "CN = new.test", "\(renewed)")

        try "not a certificate\n".write(toFile: certificate.certificatePath, atomically: true, encoding: .utf8)
        try await server.reload(HostFixture.options(options))
        let kept = try OpenSSLHandshake.run(port: port)
        #expect(kept.subject == "CN = new.test", "\(kept)")
        let error = lines(fixture, containing: "\(certificate.certificatePath) is not a PEM certificate")
        #expect(error.count == 1 && error[0].hasPrefix("error ") && error[0].contains("stay in force"), "\(fixture.logs.all)")
        await fixture.stop()
    }

    /// What start-up says about certificate and key files that cannot be used.
    static let unusableFiles: [(String, @Sendable (String) throws -> (certificate: String, key: String), String)] = [
        ("a missing certificate", { dir in (dir + "/nope.crt", try TestCertificate(in: dir).keyPath) },
         "ssl: certificate file DIR/nope.crt does not exist"),
        ("a missing key", { dir in (try TestCertificate(in: dir).certificatePath, dir + "/nope.key") },
         "ssl: key file DIR/nope.key does not exist"),
        ("a certificate file of garbage", { dir in
            try "garbage\n".write(toFile: dir + "/bad.crt", atomically: true, encoding: .utf8)
            return (dir + "/bad.crt", try TestCertificate(in: dir).keyPath)
        }, "ssl: DIR/bad.crt is not a PEM certificate: it has no \"-----BEGIN CERTIFICATE-----\" line"),
        ("a damaged certificate", { dir in
            try "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".write(toFile: dir + "/cut.crt", atomically: true, encoding: .utf8)
            return (dir + "/cut.crt", try TestCertificate(in: dir).keyPath)
        }, "ssl: DIR/cut.crt has a \"-----BEGIN CERTIFICATE-----\" block that is not a valid certificate"),
        ("certificate and key swapped", { dir in
            let certificate = try TestCertificate(in: dir)
            return (certificate.keyPath, certificate.certificatePath)
        }, "ssl: DIR/test.key holds a private key, not a certificate: are certificate and key swapped?"),
        ("a key of another certificate", { dir in
            let first = try TestCertificate(in: dir, name: "first")
            let second = try TestCertificate(in: dir, name: "second", ownKey: true)
            return (first.certificatePath, second.keyPath)
        }, "ssl: the key in DIR/second.key does not belong to the certificate in DIR/first.crt"),
    ]

    @Test("a certificate or key that cannot be used stops start-up, naming the file and saying what is wrong with it",
          arguments: 0 ..< unusableFiles.count)
    func unusableFile(index: Int) async throws {
        let (what, make, message) = Self.unusableFiles[index]
        let fixture = try HostFixture(modules: [:])
        let files = try make(fixture.directory)
        let ssl = ConfigValue.table(ConfigTable(map: [.string("certificate"): .string(files.certificate), .string("key"): .string(files.key)]))
        let expected = message.replacingOccurrences(of: "DIR", with: fixture.directory)
        do {
            try await fixture.start(options: ["ssl": ssl])
            Issue.record("\(what): start-up did not fail")
        } catch {
            #expect("\(error)".contains(expected), "\(what): \(error)")
        }
        try? FileManager.default.removeItem(atPath: fixture.directory)
    }

    @Test("ssl keys and values NetHost does not honour are reported (log and nethost check), honoured ones are not")
    func unhonouredKeysReported() async throws {
        let fixture = try HostFixture(modules: [:])
        let certificate = try TestCertificate(in: fixture.directory)
        let server = try await fixture.start(options: [
            "tls_profile": .string("paranoid"),
            "ssl": .table(ConfigTable(map: [
                .string("certificate"): .string(certificate.certificatePath), .string("key"): .string(certificate.keyPath),
                .string("protocol"): .string("tlsv1_2+"),
                .string("dhparam"): .string("dh-2048.pem"),
                .string("options"): .strings("cipher_server_preference", "no_sslv3", "no_compression"),
                .string("depth"): .integer(3),
                .string("alpn"): .string("xmpp-client"),
                .integer(5223): .table(ConfigTable(map: [.string("protocol"): .string("tlsv1_3")])),
            ])),
        ])
        let problems = server.problems.all
        for expected in [
            "tls_profile = \"paranoid\" is not a profile NetHost knows",
            "ssl.dhparam is not honoured",
            "ssl.options: cipher_server_preference not honoured",
            "ssl.depth is not honoured",
            "ssl.alpn is not an ssl key NetHost knows",
            "ssl[5223]: per-port ssl tables are not honoured",
        ] {
            #expect(problems.contains { $0.contains(expected) }, "\(expected) missing from \(problems)")
            #expect(fixture.logs.all.contains { $0.hasPrefix("warning ") && $0.contains(expected) }, "\(expected) not logged")
        }
        #expect(!problems.contains { $0.contains("no_sslv3") || $0.contains("no_compression") || $0.contains("protocol") }, "\(problems)")
        await fixture.stop()
    }

    @Test("per-host settings other than the certificate, NAME_ssl under a host and a certificates folder that does not exist are reported")
    func hostSettingsReported() async throws {
        let fixture = try HostFixture(modules: ["svc": Self.services])
        let certificate = try TestCertificate(in: fixture.directory)
        let server = try await fixture.start(
            options: ["modules_enabled": .strings("svc"), "ssl": Self.ssl(certificate), "certificates": .string("no-such-folder")],
            hosts: ["a.example": ["ssl": Self.ssl(certificate, ["protocol": .string("tlsv1_3")]), "secure_ssl": Self.ssl(certificate)]]
        )
        let problems = server.problems.all
        for expected in [
            "ssl under \"a.example\": protocol not honoured per host",
            "secure_ssl under \"a.example\" is not honoured",
            "certificates = \"no-such-folder\": the folder \(fixture.directory)/no-such-folder does not exist",
        ] {
            #expect(problems.contains { $0.contains(expected) }, "\(expected) missing from \(problems)")
        }
        await fixture.stop()
    }
}

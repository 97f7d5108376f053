import Foundation
import SocketTestSupport
import Testing

// `nethost check` as a safety audit (issue 16): besides whom net_proxy trusts
// (CommandLineCheckTests.safetyAudit), options placed where they do nothing,
// services no one can reach, and certificates that cannot be used or soon cannot.
// Each finding is in the text and in `--format json`; problems make the status 1,
// warnings alone leave it 0.

@Suite("CommandLine: nethost check audit")
struct CommandLineCheckAuditTests {
    /// The JSON report's object, and its problems and warnings.
    struct JSONReport {
        let ok: Bool?
        let problems: [String]
        let warnings: [String]

        init(_ result: CommandLineWorkspace.Completed) throws {
            let object = try #require(
                try JSONSerialization.jsonObject(with: Data(result.standardOutput.utf8)) as? [String: Any], "\(result.output)"
            )
            ok = object["ok"] as? Bool
            problems = object["problems"] as? [String] ?? []
            warnings = object["warnings"] as? [String] ?? []
        }
    }

    static func problems(_ result: CommandLineWorkspace.Completed) -> [String] {
        result.standardOutput.split(separator: "\n").filter { $0.hasPrefix("  - ") }.map { String($0.dropFirst(4)) }
    }

    static func warnings(_ result: CommandLineWorkspace.Completed) -> [String] {
        result.standardOutput.split(separator: "\n").filter { $0.hasPrefix("warning: ") }.map { String($0.dropFirst(9)) }
    }

    @Test("options net_proxy (and the core) read only globally, placed under a VirtualHost or Component: one problem each with file:line and the host")
    func globalOnlyOptionsUnderAHost() async throws {
        let workspace = try CommandLineWorkspace(prefix: "check-scope")
        let proxyPort = try FreePort.allocate()
        let config = try workspace.write(
            """
            modules_enabled = { "net_proxy", "demo_whoami" }
            proxy_port_mappings = { [\(proxyPort)] = "demo_whoami" }
            interfaces = { "127.0.0.1" }
            VirtualHost "example.com"
                proxy_trusted_proxies = { "10.0.0.0/8" }
                lua_memory_limit = 100000000
            Component "gw.example.com" "demo_whoami"
                proxy_header_timeout = 5

            """,
            to: "prosody.cfg.lua")

        let result = try await workspace.run(["check", "--config", config], watching: CommandLineWorkspace.onLoopbacks(proxyPort))

        #expect(result.termination == .exited(1), "\(result.output)")
        let expected = [
            "\(config):5: option 'proxy_trusted_proxies' only works in the global section and has no effect under VirtualHost \"example.com\"",
            "\(config):6: option 'lua_memory_limit' only works in the global section and has no effect under VirtualHost \"example.com\"",
            "\(config):8: option 'proxy_header_timeout' only works in the global section and has no effect under Component \"gw.example.com\"",
        ]
        let problems = Self.problems(result)
        #expect(problems.count == expected.count, "\(result.output)")
        for line in expected {
            #expect(problems.contains { $0.hasPrefix(line) }, "\(line): \(result.output)")
        }

        let json = try JSONReport(try await workspace.run(["check", "--config", config, "--format", "json"]))
        #expect(json.ok == false)
        #expect(json.problems.count == expected.count)
        for line in expected {
            #expect(json.problems.contains { $0.hasPrefix(line) }, "\(line): \(json.problems)")
        }
    }

    @Test("a service no port reaches is a warning; a mapping to a service nobody provides is one problem, not two; a mapped service is reachable")
    func unreachableServicesAndDeadMappings() async throws {
        let workspace = try CommandLineWorkspace(prefix: "check-reach")
        let proxyPort = try FreePort.allocate()
        let deadPort = try FreePort.allocate()
        let config = try workspace.write(
            """
            modules_enabled = { "net_proxy", "demo_whoami", "demo_echo" }
            proxy_port_mappings = { [\(proxyPort)] = "demo_whoami", [\(deadPort)] = "nobody_provides_this" }
            interfaces = { "127.0.0.1" }
            demo_echo_ports = {}

            """,
            to: "prosody.cfg.lua")
        let watched = [proxyPort, deadPort].flatMap { CommandLineWorkspace.onLoopbacks($0) }

        let result = try await workspace.run(["check", "--config", config], watching: watched)

        #expect(result.termination == .exited(1), "\(result.output)")
        let problems = Self.problems(result)
        #expect(problems.count == 1, "\(result.output)")
        #expect(problems.first?.contains("\(deadPort)") == true && problems.first?.contains("nobody_provides_this") == true, "\(result.output)")
        let warnings = Self.warnings(result)
        #expect(warnings.count == 1, "\(result.output)")
        #expect(warnings.first?.hasPrefix("service 'demo_echo' (module demo_echo) listens on no port and no PROXY port hands connections to it") == true,
                "\(result.output)")

        let json = try JSONReport(try await workspace.run(["check", "--config", config, "--format", "json"], watching: watched))
        #expect(json.ok == false)
        #expect(json.problems == problems)
        #expect(json.warnings == warnings)
    }

    @Test("a certificate that expires within 14 days is a warning naming file, subject, date and the services it serves, also behind net_proxy; the status stays 0")
    func certificateExpiringSoon() async throws {
        let workspace = try CommandLineWorkspace(prefix: "check-expiring")
        let certificates = try TemporaryDirectory(prefix: "check-expiring-certs")
        let proxyPort = try FreePort.allocate()
        let before = Self.dateUTC(Date().addingTimeInterval(3 * 86_400))
        let certificate = try await Self.selfSigned(in: certificates, name: "soon", commonName: "soon.example", days: 3)
        let after = Self.dateUTC(Date().addingTimeInterval(3 * 86_400))
        try workspace.write(#"module:provides("net", { name = "secure", encryption = "ssl", listener = {} })"#, to: "plugins/mod_secure.lua")
        let config = try workspace.write(
            """
            plugin_paths = { "plugins" }
            modules_enabled = { "net_proxy", "secure" }
            interfaces = { "127.0.0.1" }
            secure_ports = {}
            proxy_port_mappings = { [\(proxyPort)] = "secure" }
            ssl = { certificate = "\(certificate.certificate)", key = "\(certificate.key)" }

            """,
            to: "prosody.cfg.lua")

        let result = try await workspace.run(["check", "--config", config], watching: CommandLineWorkspace.onLoopbacks(proxyPort))

        #expect(result.termination == .exited(0), "\(result.output)")
        #expect(result.standardOutput.contains("no problems found"), "\(result.output)")
        let warnings = Self.warnings(result)
        #expect(warnings.count == 1, "\(result.output)")
        let warning = warnings.first ?? ""
        #expect(warning.hasPrefix("certificate \(certificate.certificate) (CN=soon.example) expires on "), "\(result.output)")
        #expect(warning.contains("expires on \(before), in 3 days") || warning.contains("expires on \(after), in 3 days"), "\(result.output)")
        #expect(warning.contains("(used for service 'secure', STARTTLS)"), "\(result.output)")

        let json = try JSONReport(try await workspace.run(["check", "--config", config, "--format", "json"]))
        #expect(json.ok == true)
        #expect(json.warnings == warnings)
    }

    @Test("a host's certificate from the certificates folder that expires soon is a warning naming the host")
    func hostCertificateExpiringSoon() async throws {
        let workspace = try CommandLineWorkspace(prefix: "check-host-cert")
        let certificates = try TemporaryDirectory(prefix: "check-host-certs")
        let port = try FreePort.allocate()
        let certificate = try await Self.selfSigned(in: certificates, name: "example.com", commonName: "example.com", days: 10)
        try workspace.write(#"module:provides("net", { name = "secure", encryption = "ssl", listener = {} })"#, to: "plugins/mod_secure.lua")
        let config = try workspace.write(
            """
            plugin_paths = { "plugins" }
            modules_enabled = { "secure" }
            interfaces = { "127.0.0.1" }
            secure_ports = { \(port) }
            certificates = "\(certificates.path)"
            VirtualHost "example.com"

            """,
            to: "prosody.cfg.lua")

        let result = try await workspace.run(["check", "--config", config], watching: CommandLineWorkspace.onLoopbacks(port))

        #expect(result.termination == .exited(0), "\(result.output)")
        let warnings = Self.warnings(result)
        #expect(warnings.count == 1, "\(result.output)")
        #expect(warnings.first?.hasPrefix("certificate \(certificate.certificate) (CN=example.com) expires on ") == true, "\(result.output)")
        #expect(warnings.first?.contains(", in 10 days (used for service 'secure', STARTTLS, host example.com)") == true, "\(result.output)")
    }

    @Test("an expired certificate, and one that does not parse, are problems naming the file; the status is 1")
    func expiredAndUnreadableCertificates() async throws {
        let workspace = try CommandLineWorkspace(prefix: "check-cert-bad")
        let certificates = try TemporaryDirectory(prefix: "check-cert-bad-certs")
        let port = try FreePort.allocate()
        let expired = try await Self.expired(in: certificates)
        let garbage = try certificates.write("not a certificate\n", to: "garbage.crt")
        try workspace.write(#"module:provides("net", { name = "secure", encryption = "ssl", listener = {} })"#, to: "plugins/mod_secure.lua")

        for (name, certificate, key, expected) in [
            ("expired", expired.certificate, expired.key,
             "certificate \(expired.certificate) (CN=old.example) expired on 2020-01-02; clients will refuse it"),
            ("garbage", garbage, expired.key,
             "ssl: \(garbage) is not a PEM certificate: it has no \"-----BEGIN CERTIFICATE-----\" line"),
        ] {
            let config = try workspace.write(
                """
                plugin_paths = { "plugins" }
                modules_enabled = { "secure" }
                interfaces = { "127.0.0.1" }
                secure_ports = { \(port) }
                ssl = { certificate = "\(certificate)", key = "\(key)" }

                """,
                to: "\(name).cfg.lua")

            let result = try await workspace.run(["check", "--config", config], watching: CommandLineWorkspace.onLoopbacks(port))

            #expect(result.termination == .exited(1), "\(name): \(result.output)")
            #expect(Self.problems(result) == [expected], "\(name): \(result.output)")
            let json = try JSONReport(try await workspace.run(["check", "--config", config, "--format", "json"]))
            #expect(json.ok == false)
            #expect(json.problems == [expected], "\(name): \(json.problems)")
        }
    }

    // MARK: Certificates

    struct Files {
        let certificate: String
        let key: String
    }

    /// "2026-05-01" in UTC, as check writes dates.
    static func dateUTC(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd"
        return formatter.string(from: date)
    }

    static let keyOptions = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]

    /// A self-signed certificate valid from now for `days`.
    static func selfSigned(in directory: TemporaryDirectory, name: String, commonName: String, days: Int) async throws -> Files {
        try await interopRun(
            "openssl",
            ["req", "-x509"] + keyOptions + ["-keyout", "\(name).key", "-out", "\(name).crt", "-days", "\(days)", "-subj", "/CN=\(commonName)"],
            in: directory)
        return Files(certificate: directory.file("\(name).crt"), key: directory.file("\(name).key"))
    }

    /// A self-signed certificate valid on 1 January 2020 only. OpenSSL 3.0's `req`
    /// takes no start or end date (and no negative -days); `openssl ca` does.
    static func expired(in directory: TemporaryDirectory) async throws -> Files {
        _ = try directory.write("", to: "index.txt")
        _ = try directory.write("01\n", to: "serial")
        _ = try directory.write(
            """
            [ ca ]
            default_ca = selfsigned
            [ selfsigned ]
            database = index.txt
            new_certs_dir = .
            serial = serial
            default_md = sha256
            policy = anything
            [ anything ]
            commonName = supplied

            """,
            to: "ca.cnf")
        try await interopRun("openssl", ["req", "-new"] + keyOptions + ["-keyout", "old.key", "-out", "old.csr", "-subj", "/CN=old.example"],
                             in: directory)
        try await interopRun(
            "openssl",
            ["ca", "-config", "ca.cnf", "-selfsign", "-keyfile", "old.key", "-in", "old.csr", "-startdate", "20200101000000Z",
             "-enddate", "20200102000000Z", "-batch", "-notext", "-out", "old.crt"],
            in: directory)
        return Files(certificate: directory.file("old.crt"), key: directory.file("old.key"))
    }
}

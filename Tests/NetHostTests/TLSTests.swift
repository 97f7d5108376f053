import Foundation
import NetHostTestSupport
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging

/// TLS with the `ssl` certificate: direct TLS for `encryption = "ssl"` services, and STARTTLS.
@Suite("TLS", .serialized)
struct TLSTests {
    static let tlsEcho = """
        local listener = {}
        function listener.onconnect(conn) conn:write("secure=" .. tostring(conn:ssl()) .. "\\n") end
        function listener.onincoming(conn, data) conn:write(data) end
        function listener.onstatus(conn, status) conn:write("status " .. status .. "\\n") end
        module:provides("net", { name = "tls_echo", listener = listener, encryption = "ssl" })
        """

    static let smtpLike = """
        -- Just enough of SMTP for `openssl s_client -starttls smtp`.
        local listener = {}
        function listener.onconnect(conn) conn:write("220 nethost test\\r\\n") end
        function listener.onincoming(conn, data)
            if data:match("^EHLO") then conn:write("250-nethost\\r\\n250 STARTTLS\\r\\n")
            elseif data:match("^STARTTLS") then conn:write("220 go ahead\\r\\n"); conn:starttls()
            else conn:write("echo " .. tostring(conn:ssl()) .. " " .. data) end
        end
        module:provides("net", { name = "smtp", listener = listener })
        """

    private func sslOption(_ certificate: TestCertificate) -> ConfigValue {
        .table(ConfigTable(map: [.string("certificate"): .string(certificate.certificatePath), .string("key"): .string(certificate.keyPath)]))
    }

    @Test("a service's encryption = \"ssl\" is direct TLS; any other value, or none, is plain, as Prosody's port manager reads it")
    func encryptionField() throws {
        let fields = ["ssl": "encryption = 'ssl'", "starttls": "encryption = 'starttls'", "upper": "encryption = 'SSL'", "absent": ""]
        let harness = try ModuleHarness(
            modules: fields.mapValues { "module:provides('net', { name = module.name, listener = {}, \($0) })" },
            options: ["modules_enabled": .table(ConfigTable(array: fields.keys.sorted().map { .string($0) }))]
        )
        #expect(harness.services.service(named: "ssl")?.encryption == .directTLS)
        #expect(harness.services.service(named: "starttls")?.encryption == .plain)
        #expect(harness.services.service(named: "upper")?.encryption == .plain)
        #expect(harness.services.service(named: "absent")?.encryption == .plain)
    }

    @Test("a service with encryption = \"ssl\" speaks TLS from the first byte; onstatus then onconnect run once the handshake is done, as in Prosody")
    func directTLS() async throws {
        let fixture = try HostFixture(modules: ["tls_echo": Self.tlsEcho])
        let certificate = try TestCertificate(in: fixture.directory)
        try await fixture.start(options: [
            "modules_enabled": .strings("tls_echo"), "tls_echo_ports": .list(.integer(0)), "ssl": sslOption(certificate),
        ])
        let client = try await TLSTestClient.connect(host: "127.0.0.1", port: try fixture.port(of: "tls_echo"))
        let received = try await client.exchange("over tls\n", until: "over tls\n")
        #expect(received == "status ssl-handshake-complete\nsecure=true\nover tls\n")
        await client.shutdown()
        await fixture.stop()
    }

    @Test("a TLS service without a certificate is reported and not opened")
    func missingCertificate() async throws {
        let fixture = try HostFixture(modules: ["tls_echo": Self.tlsEcho])
        let server = try await fixture.start(options: ["modules_enabled": .strings("tls_echo"), "tls_echo_ports": .list(.integer(0))])
        #expect(server.problems.all.contains { $0.contains("service 'tls_echo' uses TLS") && $0.contains("no certificate") })
        #expect(server.ports.boundAddresses(of: "tls_echo").isEmpty)
        await fixture.stop()
    }

    @Test("a missing certificate file stops start-up with the path in the message")
    func badCertificate() async throws {
        let fixture = try HostFixture(modules: [:])
        let ssl = ConfigValue.table(ConfigTable(map: [.string("certificate"): .string("nope.crt"), .string("key"): .string("nope.key")]))
        await #expect {
            try await fixture.start(options: ["ssl": ssl])
        } throws: { error in
            "\(error)".contains("certificate file \(fixture.directory)/nope.crt does not exist")
        }
        try? FileManager.default.removeItem(atPath: fixture.directory)
    }

    @Test("conn:starttls upgrades a plain connection (openssl s_client -starttls smtp)")
    func startTLS() async throws {
        let fixture = try HostFixture(modules: ["smtp": Self.smtpLike])
        let certificate = try TestCertificate(in: fixture.directory)
        try await fixture.start(options: ["modules_enabled": .strings("smtp"), "smtp_ports": .list(.integer(0)), "ssl": sslOption(certificate)])
        let port = try fixture.port(of: "smtp")
        let output = try runOpenSSLClient(arguments: ["-starttls", "smtp", "-connect", "127.0.0.1:\(port)"], input: "hello after starttls\n")
        #expect(output.contains("echo true hello after starttls"))
        await fixture.stop()
    }

    /// Runs `openssl s_client -quiet` (bounded by `timeout`), feeds it `input` and
    /// returns everything it printed from the server. SIGKILL, because a child of
    /// the test process inherits a signal mask that blocks SIGTERM.
    private func runOpenSSLClient(arguments: [String], input: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        let command = (["timeout", "-s", "KILL", "5", "openssl", "s_client", "-quiet"] + arguments).joined(separator: " ")
        process.arguments = ["-c", "(printf '%s' \"$INPUT\"; sleep 2) | \(command)"]
        process.environment = ["INPUT": input, "PATH": "/usr/bin:/bin"]
        let stdout = Pipe()
        process.standardOutput = stdout
        process.standardError = FileHandle.nullDevice
        try process.run()
        let output = stdout.fileHandleForReading.readDataToEndOfFile()
        // Reaped before the test goes on: Foundation holds a process it has not
        // seen exit, and everything it refers to, past the end of the test.
        process.waitUntilExit()
        return String(decoding: output, as: UTF8.self)
    }
}

import Foundation
import Logging
import NIOCore
import NetHostTestSupport
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore

/// `nethost check` warns about certificates that expire within 14 days, and loading
/// one that has expired is a problem. "Now" is a parameter, so these tests do not
/// depend on the wall clock.
@Suite("Certificate expiry")
struct CertificateExpiryTests {
    static let day = 86_400
    static let end = 1_800_000_000

    @Test("where a moment falls in the validity period, at the boundaries", arguments: [
        (end + 1, CertificateValidity.expired(on: end)),
        (end, .expiresSoon(on: end, secondsLeft: 0)),  // the last second is still valid (RFC 5280)
        (end - 14 * day + 1, .expiresSoon(on: end, secondsLeft: 14 * day - 1)),
        (end - 14 * day, .valid),
        (end - 100 * day, .valid),
        (end - 365 * day - 1, .notYetValid(from: end - 365 * day)),
    ])
    func validity(now: Int, expected: CertificateValidity) {
        #expect(CertificateValidity(notValidBefore: Self.end - 365 * Self.day, notValidAfter: Self.end, now: now) == expected)
    }

    static let wordings: [(Int, String)] = [
        (0, "within a day"), (86_399, "within a day"), (86_400, "in 1 day"), (129_599, "in 1 day"), (129_600, "in 2 days"),
        (259_195, "in 3 days"), (259_205, "in 3 days"),
    ]

    @Test("time left in words: below a day, else to the nearest day", arguments: wordings)
    func timeLeft(seconds: Int, words: String) {
        #expect(CertificateValidity.timeLeft(seconds) == words)
    }

    final class Silent: ConnectionListener {
        func onIncoming(_ connection: Connection, data: ByteBuffer) throws {}
        var wantsDrain: Bool { false }
    }

    static func ssl(_ certificate: TestCertificate) -> ConfigValue {
        .table(ConfigTable(map: [.string("certificate"): .string(certificate.certificatePath), .string("key"): .string(certificate.keyPath)]))
    }

    static func temporaryDirectory() throws -> String {
        let directory = NSTemporaryDirectory() + "nethost-expiry-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return directory
    }

    @Test("a certificate in force is warned about from 14 days before it ends, naming file, subject, date and who uses it")
    func auditOfCertificatesInForce() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let shared = try TestCertificate(in: directory, commonName: "shared.example", name: "shared", days: 60)
        let own = try TestCertificate(in: directory, commonName: "own.example", name: "own", days: 60)
        let host = try TestCertificate(in: directory, commonName: "example.com", name: "example.com", days: 60)
        let services = [
            NetService(name: "secure", handling: .listener(Silent(), .anyLoop), module: "secure", encryption: .directTLS),
            NetService(name: "private", handling: .listener(Silent(), .anyLoop), module: "private", encryption: .directTLS),
            NetService(name: "plain", handling: .listener(Silent(), .anyLoop), module: "plain"),
        ]
        let tls = TLSContexts(logger: Logger(label: "tls") { _ in SwiftLogNoOpLogHandler() })
        let now = Int(Date().timeIntervalSince1970)
        let messages = try tls.load(
            options: FixedOptions(
                global: ["ssl": Self.ssl(shared), "private_ssl": Self.ssl(own)],
                hosts: ["example.com": ["ssl": Self.ssl(host)]]
            ),
            services: services, baseDirectory: directory, reloading: false, now: now
        )
        #expect(messages.filter { $0.level >= .warning }.isEmpty, "\(messages)")
        let end = try #require(tls.shared?.certificate.notValidAfter)
        let date = LoadedCertificate.date(end)

        #expect(tls.audit(services: services, now: end - 14 * Self.day).isEmpty)
        let findings = tls.audit(services: services, now: end - 13 * Self.day)
        #expect(findings.map(\.severity) == [.warning, .warning, .warning], "\(findings)")
        #expect(findings.map(\.message) == [
            "certificate \(shared.certificatePath) (CN=shared.example) expires on \(date), in 13 days "
                + "(used for service 'secure', STARTTLS): renew it before clients refuse it",
            "certificate \(own.certificatePath) (CN=own.example) expires on \(date), in 13 days "
                + "(used for service 'private'): renew it before clients refuse it",
            "certificate \(host.certificatePath) (CN=example.com) expires on \(date), in 13 days "
                + "(used for host example.com): renew it before clients refuse it",
        ], "\(findings)")
        // Expired: loading says so (a problem for check); the audit does not repeat it.
        #expect(tls.audit(services: services, now: end + Self.day).isEmpty)
    }

    @Test("a running server logs a certificate that expires soon at start and at each reload, until it is renewed")
    func loggedAtStartAndReload() async throws {
        let fixture = try HostFixture(modules: [
            "secure": #"module:provides("net", { name = "secure", encryption = "ssl", listener = {} })"#,
        ])
        let certificate = try TestCertificate(in: fixture.directory, commonName: "soon.example", days: 3)
        let options: [String: ConfigValue] = [
            "modules_enabled": .strings("secure"), "secure_ports": .list(.integer(0)), "ssl": Self.ssl(certificate),
        ]
        let server = try await fixture.start(options: options)
        let warning = "warning certificate \(certificate.certificatePath) (CN=soon.example) expires on "
        #expect(fixture.logs.all.filter { $0.hasPrefix(warning) }.count == 1, "\(fixture.logs.all)")

        try await server.reload(HostFixture.options(options))
        #expect(fixture.logs.all.filter { $0.hasPrefix(warning) }.count == 2, "\(fixture.logs.all)")

        _ = try TestCertificate(in: fixture.directory, commonName: "soon.example", days: 60)
        try await server.reload(HostFixture.options(options))
        #expect(fixture.logs.all.filter { $0.hasPrefix(warning) }.count == 2, "\(fixture.logs.all)")
        #expect(fixture.logs.contains("CN=soon.example, valid until"), "\(fixture.logs.all)")
        await fixture.stop()
    }

    @Test("loading a certificate past its end says it expired, with the date")
    func expiredAtLoad() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let certificate = try TestCertificate(in: directory, commonName: "old.example", days: 2)
        let tls = TLSContexts(logger: Logger(label: "tls") { _ in SwiftLogNoOpLogHandler() })
        let loaded = try LoadedCertificate.load(certificate: certificate.certificatePath, key: certificate.keyPath)
        let messages = try tls.load(
            options: FixedOptions(global: ["ssl": Self.ssl(certificate)]), services: [],
            baseDirectory: directory, reloading: false, now: loaded.notValidAfter + 1
        )
        #expect(messages.filter { $0.level >= .warning }.map(\.description) == [
            "certificate \(certificate.certificatePath) (CN=old.example) expired on \(LoadedCertificate.date(loaded.notValidAfter)); clients will refuse it",
        ])
    }
}

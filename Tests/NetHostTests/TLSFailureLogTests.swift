import NetHostTestSupport
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging

/// Failed handshakes are logged as the other refusals are: the first from a client
/// at once, its repeats counted and summarised (an old client retries, a scanner
/// tries every version).
@Suite("TLS handshake failures in the log", .serialized)
struct TLSFailureLogTests {
    @Test("repeated failed handshakes from one client are one line, then one summary with the count")
    func repeatedFailuresAreSummarised() async throws {
        let fixture = try HostFixture(modules: ["svc": TLSPolicyTests.services])
        let certificate = try TestCertificate(in: fixture.directory)
        let server = try await fixture.start(options: [
            "modules_enabled": .strings("svc"), "secure_ports": .list(.integer(0)), "ssl": TLSPolicyTests.ssl(certificate),
        ])
        let port = try fixture.port(of: "secure")
        for _ in 1...3 {
            _ = try OpenSSLHandshake.run(port: port, ["-tls1_1"] + OpenSSLHandshake.allowOldProtocols)
        }
        #expect(fixture.eventually { fixture.logs.all.filter { $0.contains("ondisconnect:") }.count == 3 })
        let failure = "TLS handshake failed: the client offers no TLS version NetHost accepts (TLS 1.2 and 1.3)"
        let info = { fixture.logs.all.filter { $0.hasPrefix("info \(failure)") } }
        #expect(info().count == 1, "\(fixture.logs.all)")
        server.tls.flushSummaries()
        #expect(info().count == 2)
        #expect(info().last?.hasPrefix("info \(failure) (repeated 2 more times) peer=127.0.0.1") == true, "\(info())")
        await fixture.stop()
    }
}

import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NetHost
import NetHostTestSupport
import Testing
@testable import ProxyModule

/// Issue 14, behind a PROXY port: the load balancer sends the header, then the
/// client it speaks for never sends its TLS hello. The TLS stage the header hands
/// over to is bounded by `ssl_handshake_timeout` as on a direct-TLS port, and the
/// log names the client the header named. Virtual time, on the PROXY stage in an
/// `EmbeddedChannel` (`ProxyHeaderStageTests.Stage`).
@Suite("TLS handshake timeout after a PROXY header")
struct ProxyTLSHandshakeTimeoutTests {
    @Test("a header, then no TLS hello: closed at ssl_handshake_timeout, not a millisecond before, logged with the header's client")
    func silentClientBehindTheProxy() throws {
        let directory = NSTemporaryDirectory() + "nethost-proxy-tls-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let certificate = try TestCertificate(in: directory)
        let tlsLogs = LogCapture()
        let tls = TLSContexts(logger: Logger(label: "tls", factory: tlsLogs.handler(label:)))
        let ssl = ConfigValue.table(ConfigTable(map: [
            .string("certificate"): .string(certificate.certificatePath), .string("key"): .string(certificate.keyPath),
        ]))
        try tls.load(
            options: FixedOptions(global: ["ssl": ssl, "ssl_handshake_timeout": .integer(5)]), services: [],
            baseDirectory: directory, reloading: false, now: Int(Date().timeIntervalSince1970)
        )
        let stage = try ProxyHeaderStageTests.Stage(
            service: { NetService(name: "svc", handling: .listener($0, .anyLoop), module: "test", encryption: .directTLS) },
            tls: tls
        )
        let closed = NIOLockedValueBox(false)
        stage.channel.closeFuture.whenComplete { _ in closed.withLockedValue { $0 = true } }

        try stage.send(ProxyHeaderStageTests.header)
        #expect(stage.outcomes == [.proxied])
        stage.loop.advanceTime(by: .milliseconds(4999))
        #expect(!closed.withLockedValue { $0 } && stage.channel.isActive)
        stage.loop.advanceTime(by: .milliseconds(1))
        #expect(closed.withLockedValue { $0 })
        #expect(stage.events.isEmpty, "onconnect never ran")
        let logged = tlsLogs.all.filter { $0.contains("TLS handshake timed out: not finished within ssl_handshake_timeout (5 s)") }
        #expect(logged.count == 1 && logged.first?.contains("peer=203.0.113.7") == true && logged.first?.contains("proxy=127.0.0.1") == true,
                "\(tlsLogs.all)")
    }
}

import Foundation
import NetHostTestSupport
import Testing
@testable import NetHost

/// addclient with TLS, to a direct-TLS echo service of the same host (a
/// self-signed certificate for "localhost").
@Suite("Lua outgoing connections over TLS", .serialized)
struct LuaOutgoingTLSTests {
    static let tlsBackend = """
        module:provides("net", { name = "tls_backend", encryption = "ssl", listener = {
            onincoming = function (conn, data) conn:write(data) end } })
        """

    static let tlsDriver = #"""
        local server = require "net.server"
        local listener = {}
        local last
        function listener.onincoming(conn, data)
        	if data == "close\n" then last:close(); conn:write("closed\n"); return end
        	local host, port, cafile = data:match("^(%S+) (%d+) ?(%S*)\n")
        	local l = {}
        	function l.onstatus(c, status) conn:write("status " .. status .. "\n") end
        	function l.onconnect(c) conn:write("connected ssl=" .. tostring(c:ssl()) .. "\n"); c:write("over tls\n") end
        	function l.onincoming(c, d) conn:write("got " .. d) end
        	function l.ondisconnect(c, err) conn:write("disconnected " .. tostring(err) .. "\n") end
        	last = server.addclient(host, tonumber(port), l, nil, cafile ~= "" and { cafile = cafile } or true, "tcp")
        end
        module:provides("net", { name = "tls_driver", listener = listener })
        """#

    private func withHost(_ body: (HostFixture, TestCertificate) async throws -> Void) async throws {
        let fixture = try HostFixture(modules: ["tls_backend": Self.tlsBackend, "tls_driver": Self.tlsDriver])
        let certificate = try TestCertificate(in: fixture.directory)
        do {
            try await fixture.start(options: [
                "modules_enabled": .strings("tls_backend", "tls_driver"),
                "tls_backend_ports": .list(.integer(0)), "tls_driver_ports": .list(.integer(0)),
                "ssl": .table(ConfigTable(map: [
                    .string("certificate"): .string(certificate.certificatePath), .string("key"): .string(certificate.keyPath),
                ])),
            ])
            try await body(fixture, certificate)
        } catch {
            await fixture.stop()
            throw error
        }
        await fixture.stop()
    }

    @Test("verified against the given cafile, SNI 'localhost': onstatus ssl-handshake-complete, then onconnect, then an encrypted echo")
    func verified() async throws {
        try await withHost { fixture, certificate in
            let client = try fixture.connect(to: "tls_driver")
            try client.send("localhost \(try fixture.port(of: "tls_backend")) \(certificate.certificatePath)\n")
            #expect(try client.readLine() == "status ssl-handshake-complete")
            #expect(try client.readLine() == "connected ssl=true")
            #expect(try client.readLine() == "got over tls")
        }
    }

    @Test("close while the TLS handshake waits for a silent server: given up, ondisconnect(conn, nil), no onconnect later")
    func closeDuringHandshake() async throws {
        let silent = try LoopbackBackend(mode: .stalledSink)
        defer { silent.shutdown() }
        try await withHost { fixture, _ in
            let client = try fixture.connect(to: "tls_driver")
            try client.send("127.0.0.1 \(silent.port)\n")
            #expect(await fixture.waitUntil { silent.connectionCount == 1 })  // connected; the hello goes unanswered
            try client.send("close\n")
            #expect(try client.readLine() == "closed")
            #expect(try client.readLine() == "disconnected nil")
            silent.startReading()  // it reads the hello now; nothing comes of it
            try client.send("127.0.0.1 \(try FreePort.allocate())\n")  // a marker: the next line is this one's
            #expect(try client.readLine() == "disconnected connection refused")
        }
    }

    @Test("a certificate the system's CAs do not vouch for: the handshake fails and ondisconnect says why")
    func unverified() async throws {
        try await withHost { fixture, _ in
            let client = try fixture.connect(to: "tls_driver")
            try client.send("localhost \(try fixture.port(of: "tls_backend"))\n")
            let line = try client.readLine()
            #expect(line.hasPrefix("disconnected "), "\(line)")
            #expect(line.lowercased().contains("certificate"), "\(line)")
        }
    }
}

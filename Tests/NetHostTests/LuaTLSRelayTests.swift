import Foundation
import NIOCore
import NetHostTestSupport
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore

/// Issue 14: a Lua service's direct TLS runs off the Lua loop. The handshake and the
/// encryption run on a Swift loop, and plaintext reaches the Lua loop through a
/// socket pair (`LuaLoopTLSRelay`); the service sees what it saw before. Real
/// sockets, a server with two loops (the Lua loop and one Swift loop).
@Suite("TLS for Lua services off the Lua loop", .serialized)
struct LuaTLSRelayTests {
    static let echo = """
        local listener = {}
        function listener.onconnect(conn)
            conn:write(("client=%s:%d tls=%s\\n"):format(conn:ip(), conn:port(), tostring(conn:ssl())))
        end
        function listener.onstatus(conn, status) conn:write("status " .. status .. "\\n") end
        function listener.onincoming(conn, data) conn:write(data) end
        function listener.ondisconnect(conn, err)
            module:log("info", "ondisconnect %s:%d %s", conn:ip(), conn:port(), tostring(err))
        end
        module:provides("net", { name = "relay_echo", listener = listener, encryption = "ssl" })
        """

    /// Writes 512 KiB and "END\\n" at once, then closes: all of it must arrive before the close.
    static let closer = """
        local listener = {}
        function listener.onconnect(conn)
            conn:write(string.rep("x", 512 * 1024) .. "END\\n")
            conn:close()
        end
        function listener.ondisconnect(conn, err) module:log("info", "closer ondisconnect %s", tostring(err)) end
        module:provides("net", { name = "relay_closer", listener = listener, encryption = "ssl" })
        """

    private static func start(_ fixture: HostFixture, modules: [String]) async throws -> NetHostServer {
        let certificate = try TestCertificate(in: fixture.directory)
        var options: [String: ConfigValue] = [
            "modules_enabled": .table(ConfigTable(array: modules.map { .string($0) })),
            "ssl": .table(ConfigTable(map: [
                .string("certificate"): .string(certificate.certificatePath), .string("key"): .string(certificate.keyPath),
            ])),
        ]
        for module in modules {
            options["\(module)_ports"] = .list(.integer(0))
        }
        return try await fixture.start(options: options)
    }

    @Test("the handshake completes while the Lua loop is held; once it is let go, onstatus, onconnect with the client's address, and the echo follow")
    func handshakeWithoutTheLuaLoop() async throws {
        let fixture = try HostFixture(modules: ["relay_echo": Self.echo])
        let server = try await Self.start(fixture, modules: ["relay_echo"])
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
            client = try await TLSProbeClient.connect(port: try fixture.port(of: "relay_echo"))
        } catch {
            gate.signal()
            throw error
        }
        // Bounded: with the TLS on the Lua loop, the handshake waits for it and this fails.
        let handshook = await client.waitForHandshake(timeout: .seconds(5))
        gate.signal()
        #expect(handshook, "the TLS handshake needed the Lua loop")
        try await client.send("ping\n")
        #expect(await client.waitForText("ping\n"))
        let port = client.localPort
        #expect(client.receivedText == "status ssl-handshake-complete\nclient=127.0.0.1:\(port) tls=true\nping\n")
        await client.shutdown()
        #expect(await fixture.waitUntil { fixture.logs.contains("ondisconnect 127.0.0.1:\(port) nil") }, "\(fixture.logs.all)")
        await fixture.stop()
    }

    @Test("1 MiB each way through a Lua echo over TLS: every byte back, in order")
    func largeTransfer() async throws {
        let fixture = try HostFixture(modules: ["relay_echo": Self.echo])
        _ = try await Self.start(fixture, modules: ["relay_echo"])
        let client = try await TLSProbeClient.connect(port: try fixture.port(of: "relay_echo"))
        #expect(await client.waitForHandshake())
        let greeting = "status ssl-handshake-complete\nclient=127.0.0.1:\(client.localPort) tls=true\n"
        #expect(await client.waitForText(greeting))
        let payload = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: ($0 &* 31 &+ 7) % 251) }
        // Sent in pieces while the echo comes back: both directions are busy at once.
        for start in stride(from: 0, to: payload.count, by: 64 * 1024) {
            try await client.send(Array(payload[start..<min(start + 64 * 1024, payload.count)]))
        }
        #expect(await client.waitForBytes(greeting.utf8.count + payload.count, timeout: .seconds(30)))
        let received = client.received
        #expect(received.count == greeting.utf8.count + payload.count)
        #expect(Array(received.dropFirst(greeting.utf8.count)) == payload, "the echo differs from what was sent")
        await client.shutdown()
        await fixture.stop()
    }

    @Test("a client's close (close_notify) reaches ondisconnect with no error, after the bytes it sent were handled")
    func clientClose() async throws {
        let fixture = try HostFixture(modules: ["relay_echo": Self.echo])
        _ = try await Self.start(fixture, modules: ["relay_echo"])
        let client = try await TLSProbeClient.connect(port: try fixture.port(of: "relay_echo"))
        #expect(await client.waitForHandshake())
        try await client.send("bye\n")
        #expect(await client.waitForText("bye\n"))
        let port = client.localPort
        await client.close()
        #expect(await fixture.waitUntil { fixture.logs.contains("ondisconnect 127.0.0.1:\(port) nil") }, "\(fixture.logs.all)")
        await client.shutdown()
        await fixture.stop()
    }

    @Test("a client's half-close ends the connection, as it does on a socket of the Lua loop's own: the server closes and ondisconnect runs")
    func clientHalfClose() async throws {
        let fixture = try HostFixture(modules: ["relay_echo": Self.echo])
        _ = try await Self.start(fixture, modules: ["relay_echo"])
        let client = try await TLSProbeClient.connect(port: try fixture.port(of: "relay_echo"))
        #expect(await client.waitForHandshake())
        try await client.send("half\n")
        #expect(await client.waitForText("half\n"))
        let port = client.localPort
        try await client.closeOutput()
        #expect(await client.waitForClose(), "the server kept the half-closed connection open")
        #expect(await fixture.waitUntil { fixture.logs.contains("ondisconnect 127.0.0.1:\(port)") }, "\(fixture.logs.all)")
        await client.shutdown()
        await fixture.stop()
    }

    @Test("a client gone without close_notify (killed): ondisconnect is told so in words, as when the TLS ran on the Lua loop")
    func raggedCloseReachesOndisconnect() async throws {
        let fixture = try HostFixture(modules: ["relay_echo": Self.echo])
        _ = try await Self.start(fixture, modules: ["relay_echo"])
        let port = try fixture.port(of: "relay_echo")
        // s_client -quiet ignores the end of its input; SIGKILL after 2 s closes the
        // socket with no close_notify. (SIGKILL: the test process's children inherit
        // a mask that blocks SIGTERM.)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "(printf 'ragged\\n'; sleep 4) | timeout -s KILL 2 openssl s_client -quiet -connect 127.0.0.1:\(port)"]
        process.environment = ["PATH": "/usr/bin:/bin"]
        let stdout = Pipe()
        process.standardOutput = stdout
        process.standardError = FileHandle.nullDevice
        try process.run()
        let output = String(decoding: stdout.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(output.contains("ragged"), "\(output)")
        let reason = "TLS error: the peer closed the TLS connection without a close_notify alert"
        #expect(await fixture.waitUntil { fixture.logs.all.contains { $0.contains("ondisconnect 127.0.0.1:") && $0.contains(reason) } },
                "\(fixture.logs.all)")
        await fixture.stop()
    }

    @Test("conn:close() right after a large write: every byte written arrives before the close")
    func serverCloseAfterWrite() async throws {
        let fixture = try HostFixture(modules: ["relay_closer": Self.closer])
        _ = try await Self.start(fixture, modules: ["relay_closer"])
        let client = try await TLSProbeClient.connect(port: try fixture.port(of: "relay_closer"))
        #expect(await client.waitForHandshake())
        #expect(await client.waitForClose(timeout: .seconds(10)))
        let text = client.receivedText
        #expect(text.utf8.count == 512 * 1024 + 4, "received \(text.utf8.count) bytes")
        #expect(text.hasSuffix("xxxxEND\n"))
        #expect(await fixture.waitUntil { fixture.logs.contains("closer ondisconnect nil") }, "\(fixture.logs.all)")
        await client.shutdown()
        await fixture.stop()
    }

    @Test("a handshake that fails off the Lua loop still reaches the service's ondisconnect, in words, without onconnect")
    func failedHandshakeReachesOndisconnect() async throws {
        let fixture = try HostFixture(modules: ["relay_echo": Self.echo])
        _ = try await Self.start(fixture, modules: ["relay_echo"])
        let client = try fixture.connect(to: "relay_echo")
        try client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        _ = try? client.readToEnd()
        let expected = "TLS handshake failed: the client sent a plain HTTP request, not a TLS handshake"
        #expect(await fixture.waitUntil { fixture.logs.contains("ondisconnect 127.0.0.1:") && fixture.logs.contains(expected) },
                "\(fixture.logs.all)")
        let ondisconnect = fixture.logs.all.filter { $0.contains("ondisconnect 127.0.0.1:") }
        #expect(ondisconnect.count == 1 && ondisconnect.first?.contains(expected) == true, "\(ondisconnect)")
        await fixture.stop()
    }
}

import Foundation
import NetHostTestSupport
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore

/// Backpressure where only real sockets show it: an echo service whose client sends
/// a lot and reads nothing. The server stops reading once the echoes wait, so the
/// client's sends stall in the kernel's buffers, and what the server holds for that
/// connection stays small; the client then reads everything back, intact.
/// (Each step on virtual time: `SendBufferTests`.)
@Suite("Send buffer over TCP", .serialized)
struct SendBufferSocketTests {
    static let luaEcho = try! String(contentsOfFile: SendBufferTests.shippedModule("mod_demo_echo.lua"), encoding: .utf8)

    @Test("an echo service with a client that never reads holds a bounded send buffer, and every byte comes back",
          arguments: ["demo_echo", "demo_echo_swift"])
    func nonReadingClientIsBounded(service: String) async throws {
        let modules = service == "demo_echo" ? ["demo_echo": Self.luaEcho] : [:]
        try await HostFixture.running(
            modules: modules,
            options: ["modules_enabled": .strings(service), "\(service)_ports": .list(.integer(0))]
        ) { fixture in
            let server = try #require(fixture.server)
            let client = try fixture.connect(to: service)
            let chunk = TestBytes.pseudoRandom(count: 256 * 1024)
            // Far more than the kernel's loopback buffers hold: without backpressure the
            // server reads it all and buffers the echoes (before: up to the 32 MiB limit,
            // then it closed the connection).
            let most = 96 * 1024 * 1024
            var sent = 0
            var largest = 0
            while sent < most {
                // A send that waits this long means the server has stopped reading.
                guard (try? client.sendUnlessClosed(chunk, timeout: .milliseconds(750))) == true else { break }
                sent += chunk.count
                if sent % (4 * 1024 * 1024) == 0 {
                    largest = max(largest, await server.tracker.queuedSendStorage(service: service).max() ?? 0)
                }
            }
            let queued = await server.tracker.queuedSendStorage(service: service)
            #expect(queued.count == 1, "the connection was closed after \(sent) bytes")
            largest = max(largest, queued.max() ?? 0)
            #expect(largest <= 1024 * 1024, "the server held \(largest) bytes for a client that reads nothing")
            #expect(sent < most, "the client sent \(sent) bytes without the server ever stopping to read")

            // Partial chunks count too: send what fits, then read everything back.
            let echoed = try client.read(count: sent, timeout: .seconds(30))
            #expect(echoed.count == sent)
            #expect(echoed.prefix(chunk.count).elementsEqual(chunk))
            #expect(!fixture.logs.contains("send buffer full"))
        }
    }
}

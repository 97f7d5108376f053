import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NetHostTestSupport
import Testing
@testable import NetHost
@testable import NetHostCore
@testable import NetHostLua

/// modules/mod_tcp_relay.lua as shipped, between test clients and a NIO backend on loopback.
@Suite("mod_tcp_relay over real sockets", .serialized)
struct RelayTests {
    static let relaySource: String = {
        let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("modules/mod_tcp_relay.lua")
        return (try? String(contentsOf: file, encoding: .utf8)) ?? "error('modules/mod_tcp_relay.lua not found')"
    }()

    static func options(backendPort: Int) -> [String: ConfigValue] {
        [
            "modules_enabled": .strings("tcp_relay"),
            "tcp_relay_ports": .list(.integer(0)),
            "tcp_relay_backend": .string("127.0.0.1:\(backendPort)"),
        ]
    }

    /// Client `index`'s bytes: a pattern no other client sends, so a mix-up shows.
    static func payload(_ index: Int, count: Int) -> [UInt8] {
        TestBytes.pseudoRandom(count: count, seed: index)
    }

    @Test("20 relays at once, each moving 1 MiB each way through an echo backend, byte for byte")
    func parallelRelays() async throws {
        let backend = try LoopbackBackend(mode: .echo)
        defer { backend.shutdown() }
        try await HostFixture.running(modules: ["tcp_relay": Self.relaySource], options: Self.options(backendPort: backend.port)) { fixture in
            let port = try fixture.port(of: "tcp_relay")
            // 1 MiB each way per relay; 128 KiB under ThreadSanitizer, where the race
            // check needs the paths taken, not the volume (20 MiB took minutes there).
            let size = ProcessInfo.processInfo.environment["TSAN_OPTIONS"] == nil ? 1 << 20 : 128 << 10
            let chunk = 32 * 1024, clients = 20
            let results = NIOLockedValueBox<[Int: String]>([:])
            for index in 0 ..< clients {
                let thread = Thread {
                    do {
                        let client = try TestClient(connectingTo: "127.0.0.1", port: port, timeout: .seconds(20))
                        defer { client.close() }
                        let bytes = Self.payload(index, count: size)
                        var offset = 0
                        while offset < size {
                            let piece = Array(bytes[offset ..< offset + chunk])
                            try client.send(piece)
                            guard try client.read(count: chunk) == piece else {
                                results.withLockedValue { $0[index] = "mismatch at \(offset)" }
                                return
                            }
                            offset += chunk
                        }
                        results.withLockedValue { $0[index] = "ok" }
                    } catch {
                        results.withLockedValue { $0[index] = "\(error)" }
                    }
                }
                thread.start()
            }
            // Polled, not waited for on a blocked thread: Swift's concurrency pool (and
            // Dispatch's global queue under it) has only as many threads as cores.
            #expect(await fixture.waitUntil(timeout: .seconds(300)) { results.withLockedValue { $0.count } == clients })
            let outcome = results.withLockedValue { $0 }
            #expect(outcome.count == clients)
            #expect(outcome.values.allSatisfy { $0 == "ok" }, "\(outcome)")
            #expect(backend.connectionCount == clients)
            #expect(backend.receivedBytes == clients * size)
        }
    }

    @Test("100 MiB into a relay whose backend stops reading: the relay holds under 256 KiB for it, then delivers every byte")
    func stalledBackend() async throws {
        let backend = try LoopbackBackend(mode: .stalledSink)
        defer { backend.shutdown() }
        try await HostFixture.running(modules: ["tcp_relay": Self.relaySource], options: Self.options(backendPort: backend.port)) { fixture in
            guard let server = fixture.server else { return }
            // The relay's backend connections count their send buffers in a budget of
            // their own, so what they hold is measured apart from any other test's.
            let budget = SendBufferBudget()
            try await server.luaLoop.submit {
                let runtime = server.modules.value.runtime
                let current = runtime.outgoingSettings
                runtime.outgoingSettings = {
                    var settings = current()
                    settings.sendBufferBudget = budget
                    return settings
                }
            }.get()
            // 100 MiB, as the issue asks; under ThreadSanitizer (make sanitize-thread sets
            // TSAN_OPTIONS), where every byte costs many times more, 16 MiB: the race
            // check needs the paths taken, not the volume.
            let total = ProcessInfo.processInfo.environment["TSAN_OPTIONS"] == nil ? 100 << 20 : 16 << 20
            let chunk = 64 * 1024
            let port = try fixture.port(of: "tcp_relay")
            let sent = NIOLockedValueBox<String?>(nil)
            let sender = Thread {
                do {
                    let client = try TestClient(connectingTo: "127.0.0.1", port: port, timeout: .seconds(30))
                    defer { client.close() }
                    let piece = [UInt8](repeating: 0x5A, count: chunk)
                    for _ in 0 ..< total / chunk { try client.send(piece, timeout: .seconds(30)) }
                    sent.withLockedValue { $0 = "ok" }
                } catch {
                    sent.withLockedValue { $0 = "\(error)" }
                }
            }
            sender.start()
            var peak = 0
            // The stall: the backend reads nothing while the client keeps sending, until
            // the kernel's buffers towards the backend are full and the relay has to hold
            // bytes itself (however long that takes on a loaded machine), then a little more.
            let stallLimit = ContinuousClock.now + .seconds(60)
            while budget.used == 0, ContinuousClock.now < stallLimit, sent.withLockedValue({ $0 }) == nil {
                try await Task.sleep(for: .milliseconds(1))
            }
            let stallEnd = ContinuousClock.now + .milliseconds(300)
            while ContinuousClock.now < stallEnd {
                peak = max(peak, budget.used)
                try await Task.sleep(for: .milliseconds(1))
            }
            let heldDuringStall = peak
            backend.startReading()
            let deadline = ContinuousClock.now + .seconds(120)
            // Until every byte is there, or the sender has failed (the relay gave up on the connection).
            while backend.receivedBytes < total, ContinuousClock.now < deadline, sent.withLockedValue({ $0 }).map({ $0 == "ok" }) ?? true {
                peak = max(peak, budget.used)
                try await Task.sleep(for: .milliseconds(1))
            }
            #expect(backend.receivedBytes == total)
            #expect(heldDuringStall > 0, "the relay never had to hold anything: the stall did not happen")
            print("relay backpressure: peak \(peak) bytes held for the backend, \(heldDuringStall) during the stall")
            #expect(peak < 256 * 1024, "the relay held \(peak) bytes for its backend")
            _ = await fixture.waitUntil { sent.withLockedValue { $0 } != nil }
            #expect(sent.withLockedValue { $0 } == "ok")
        }
    }
}

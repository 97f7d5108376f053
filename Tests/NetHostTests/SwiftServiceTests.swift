import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NetHostTestSupport
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging

/// A Swift service, registered by a native module, through every callback of
/// the same connection API Lua services use.
@Suite("Swift services over TCP", .serialized)
struct SwiftServiceTests {
    /// What the service saw, in order, for the test to read. Each test has its own,
    /// which its module finds by the id in the `recorder_journal` option: no test
    /// reads another's entries.
    final class Journal: Sendable {
        private let entries = NIOLockedValueBox<[String]>([])
        func add(_ entry: String) { entries.withLockedValue { $0.append(entry) } }
        var all: [String] { entries.withLockedValue { $0 } }

        let id = UUID().uuidString
        private static let open = NIOLockedValueBox<[String: Journal]>([:])

        static func make() -> Journal {
            let journal = Journal()
            open.withLockedValue { $0[journal.id] = journal }
            return journal
        }

        static func named(_ id: String) -> Journal? { open.withLockedValue { $0[id] } }

        func close() { _ = Self.open.withLockedValue { $0.removeValue(forKey: id) } }
    }

    final class Recorder: ConnectionListener {
        let wantsDrain = true
        let journal: Journal
        init(journal: Journal) { self.journal = journal }

        func onConnect(_ connection: Connection) throws {
            journal.add("connect \(connection.addresses.clientIP)")
            connection.write("hello from swift\n")
        }

        func onIncoming(_ connection: Connection, data: ByteBuffer) throws {
            let text = String(buffer: data)
            journal.add("incoming \(text.trimmingCharacters(in: .newlines))")
            switch text {
            case "flood\n":
                // 16 MiB: more than loopback's socket buffers take at once, and within
                // max_send_buffer_size (32 MiB of buffer storage, which a single buffer
                // of 32 MiB payload plus its overhead would pass).
                connection.write(ByteBuffer(repeating: UInt8(ascii: "x"), count: 16 << 20))
            case "timeout\n":
                connection.setReadTimeout(.milliseconds(200))
            case "switch\n":
                connection.setListener(Other(journal: journal), data: "handed over")
            case "fail\n":
                throw Failure()
            case "backlog\n":
                writeUntilQueued(connection)
                connection.close()
            default:
                connection.write(data)
            }
        }

        /// Writes 1 KiB at a time until the socket refuses some (the client is not reading):
        /// a little is then queued, far below the high watermark, so the channel stays writable.
        private func writeUntilQueued(_ connection: Connection) {
            let chunk = ByteBuffer(repeating: UInt8(ascii: "q"), count: 1024)
            var written = 0
            var queued = 0
            while queued == 0 && written < 256 << 20 {
                connection.write(chunk)
                written += chunk.readableBytes
                queued = (try? connection.channel.syncOptions?.getOption(ChannelOptions.bufferedWritableBytes)) ?? 0
            }
            journal.add("backlog \(written) queued \(queued) writable \(connection.channel.isWritable)")
        }

        func onDrain(_ connection: Connection) throws { journal.add("drain") }

        func onReadTimeout(_ connection: Connection) throws -> Bool {
            journal.add("readtimeout")
            connection.write("idle\n")
            return false
        }

        func onDetach(_ connection: Connection) throws { journal.add("detach") }

        func onDisconnect(_ connection: Connection, reason: String?) {
            journal.add("disconnect \(reason ?? "nil")")
        }
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String { "the Swift service refused" }
    }

    final class Other: ConnectionListener {
        let journal: Journal
        init(journal: Journal) { self.journal = journal }
        func onAttach(_ connection: Connection, data: (any Sendable)?) throws {
            connection.write("attached \(data as? String ?? "?")\n")
        }
        func onIncoming(_ connection: Connection, data: ByteBuffer) throws {
            connection.write("other: " + String(buffer: data))
        }
        func onDisconnect(_ connection: Connection, reason: String?) { journal.add("other disconnect") }
    }

    final class RecorderModule: NativeModule {
        static let name = "recorder"
        let context: ModuleContext
        init(context: ModuleContext) throws { self.context = context }
        func load() throws {
            guard case .string(let id)? = context.options.value("recorder_journal", host: nil), let journal = Journal.named(id) else {
                throw Failure()
            }
            try context.provide(NetService(name: "recorder", handling: .listener(Recorder(journal: journal), .anyLoop), module: Self.name))
        }
    }

    private func withRecorder(_ body: (HostFixture, Journal) async throws -> Void) async throws {
        let journal = Journal.make()
        defer { journal.close() }
        let fixture = try HostFixture(modules: [:])
        try await fixture.start(
            options: [
                "modules_enabled": .strings("recorder"), "recorder_ports": .list(.integer(0)),
                "recorder_journal": .string(journal.id),
            ],
            natives: [RecorderModule.self]
        )
        do { try await body(fixture, journal) } catch {
            await fixture.stop()
            throw error
        }
        await fixture.stop()
    }

    @Test("onConnect, onIncoming and onDisconnect, with the client's address")
    func conversation() async throws {
        try await withRecorder { fixture, journal in
            do {
                let client = try fixture.connect(to: "recorder")
                #expect(try client.readLine() == "hello from swift")
                try client.send("echo me\n")
                #expect(try client.readLine() == "echo me")
            }
            #expect(fixture.eventually { journal.all.contains("disconnect nil") })
            #expect(journal.all.contains("connect 127.0.0.1"))
            #expect(journal.all.contains("incoming echo me"))
        }
    }

    @Test("onDrain after a write that had to wait, onReadTimeout, and a thrown error closing only that connection")
    func drainTimeoutError() async throws {
        try await withRecorder { fixture, journal in
            let flooded = try fixture.connect(to: "recorder")
            _ = try flooded.readLine()
            try flooded.send("flood\n")
            _ = try flooded.read(count: 16 << 20)
            #expect(fixture.eventually { journal.all.contains("drain") })

            let idle = try fixture.connect(to: "recorder")
            _ = try idle.readLine()
            try idle.send("timeout\n")
            #expect(try idle.readLine() == "idle")
            #expect(try idle.waitForPeerClose())
            #expect(journal.all.contains("readtimeout"))

            let failing = try fixture.connect(to: "recorder")
            _ = try failing.readLine()
            try failing.send("fail\n")
            #expect(try failing.waitForPeerClose())
            #expect(fixture.logs.contains("error in onincoming callback, closing the connection: the Swift service refused"))
            try flooded.send("still fine\n")
            #expect(try flooded.readLine() == "still fine")
        }
    }

    @Test("close() with a few bytes queued sends them, then the FIN at once: no wait for send_timeout, no reason")
    func closeAfterSmallBacklog() async throws {
        try await withRecorder { fixture, journal in
            let client = try fixture.connect(to: "recorder")
            _ = try client.readLine()
            let before = journal.all.count
            func entries() -> ArraySlice<String> { journal.all.dropFirst(before) }
            try client.send("backlog\n")
            #expect(fixture.eventually(timeout: 30) { entries().contains { $0.hasPrefix("backlog ") } })
            let entry = try #require(entries().first { $0.hasPrefix("backlog ") })
            let fields = entry.split(separator: " ")
            let written = try #require(Int(fields[1]))
            #expect(fields[3] != "0" && fields[5] == "true", "\(entry): no small backlog to test")
            // send_timeout is 180 s; each of the client's reads gives up after 5 s.
            let received = try client.readToEnd()
            #expect(received.count == written)
            #expect(fixture.eventually { entries().contains("disconnect nil") }, "\(entries())")
            #expect(!entries().contains { $0.hasPrefix("disconnect") && $0 != "disconnect nil" }, "\(entries())")
        }
    }

    @Test("setListener: onDetach on the old listener, onAttach with its data on the new one, which then gets the bytes")
    func handOver() async throws {
        try await withRecorder { fixture, journal in
            let client = try fixture.connect(to: "recorder")
            _ = try client.readLine()
            try client.send("switch\n")
            #expect(try client.readLine() == "attached handed over")
            try client.send("next\n")
            #expect(try client.readLine() == "other: next")
            #expect(journal.all.contains("detach"))
        }
    }
}

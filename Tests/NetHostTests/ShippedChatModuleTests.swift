import Foundation
import NIOCore
import NIOEmbedded
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore

/// modules/mod_demo_chat.lua as shipped, on virtual time: lines go to the others,
/// a line longer than demo_chat_max_line_length is refused whether or not its newline
/// has come, and a client that stays silent is asked once, then closed.
@Suite("Shipped module: mod_demo_chat")
struct ShippedChatModuleTests {
    static let source: String = {
        let modules = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("modules/mod_demo_chat.lua")
        return (try? String(contentsOf: modules, encoding: .utf8)) ?? "error('modules/mod_demo_chat.lua not found')"
    }()

    static func harness(maxLine: Int = 64) throws -> ModuleHarness {
        try ModuleHarness(modules: ["demo_chat": source], options: [
            "modules_enabled": .strings("demo_chat"), "demo_chat_max_line_length": .integer(maxLine),
        ])
    }

    static let readTimeout: NetworkSettings = {
        var problems: [NetworkSettings.Problem] = []
        let table = ConfigTable(map: [.string("read_timeout"): .integer(30)])
        return NetworkSettings(from: table, problems: &problems)
    }()

    @Test("a line, even split over reads, reaches every other client with its sender's address")
    func linesReachTheOthers() throws {
        let harness = try Self.harness()
        let alice = try harness.connect(to: "demo_chat")
        let bob = try harness.connect(to: "demo_chat")
        _ = (try alice.sent(), try bob.sent())
        #expect(try alice.exchange("hel") == "")
        #expect(try alice.exchange("lo\r\nsecond\n") == "")
        #expect(try bob.sent() == "127.0.0.1:9: hello\n127.0.0.1:9: second\n")
    }

    @Test("a complete line longer than demo_chat_max_line_length is refused, not broadcast")
    func longCompleteLineIsRefused() throws {
        let harness = try Self.harness(maxLine: 64)
        let sender = try harness.connect(to: "demo_chat")
        let other = try harness.connect(to: "demo_chat")
        _ = (try sender.sent(), try other.sent())
        #expect(try sender.exchange(String(repeating: "x", count: 65) + "\n") == "line too long\n")
        #expect(!sender.isActive)
        #expect(try other.sent().contains("x") == false)
    }

    @Test("64 KiB without a newline is refused at once, and the others still chat")
    func longUnterminatedLineIsRefused() throws {
        let harness = try Self.harness(maxLine: 1024)
        let flooder = try harness.connect(to: "demo_chat")
        let alice = try harness.connect(to: "demo_chat")
        let bob = try harness.connect(to: "demo_chat")
        _ = (try flooder.sent(), try alice.sent(), try bob.sent())
        #expect(try flooder.exchange(String(repeating: "y", count: 64 * 1024)) == "line too long\n")
        #expect(!flooder.isActive)
        _ = (try alice.sent(), try bob.sent())
        _ = try alice.exchange("still here\n")
        #expect(try bob.sent() == "127.0.0.1:9: still here\n")
    }

    @Test("a silent client is asked once at read_timeout and closed at the next")
    func silentClientIsClosed() throws {
        let harness = try Self.harness()
        let idle = try harness.connect(to: "demo_chat", settings: Self.readTimeout)
        _ = try idle.sent()
        harness.advance(by: .seconds(30))
        #expect(try idle.sent() == "* still there?\n")
        #expect(idle.isActive)
        harness.advance(by: .seconds(30))
        #expect(!idle.isActive)
    }

    @Test("a client that answers the question is kept")
    func answeringKeeps() throws {
        let harness = try Self.harness()
        let client = try harness.connect(to: "demo_chat", settings: Self.readTimeout)
        harness.advance(by: .seconds(30))
        _ = try client.exchange("yes\n")
        harness.advance(by: .seconds(30))
        #expect(try client.sent().hasSuffix("* still there?\n"))
        #expect(client.isActive)
    }
}

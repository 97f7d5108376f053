import NIOCore
import NIOEmbedded
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging

/// `network_settings.send_timeout` on an open connection: a peer that stops
/// reading is cut off once writes have waited that long; one that reads again in
/// time is not. Virtual time, on an `EmbeddedChannel` whose writability the test
/// sets as a full socket buffer would. (After `close()`: `CloseAfterFlushTests`.
/// That the option reaches a running server's connections: `LuaServiceTests`.)
@Suite("Send timeout")
struct SendTimeoutTests {
    /// Answers every chunk; records why each connection ended.
    static let service = """
        module:provides("net", { name = "writer", listener = {
            onincoming = function (conn, data) conn:write("reply to " .. data) end,
            ondisconnect = function (conn, reason) module:log("info", "ondisconnect: %s", tostring(reason)) end,
        } })
        """

    private static func setUp() throws -> (ModuleHarness, NetworkSettings) {
        let harness = try ModuleHarness(modules: ["writer": Self.service], options: ["modules_enabled": .strings("writer")])
        return (harness, try .parsing(["send_timeout": .integer(3)]))
    }

    /// The peer has stopped reading: the socket takes no more, so the channel is not writable.
    private static func stopReading(_ channel: EmbeddedChannel) {
        channel.isWritable = false
        channel.pipeline.fireChannelWritabilityChanged()
    }

    @Test("a peer that stops reading is disconnected send_timeout after a write had to wait, not before, with reason \"send timeout\"")
    func stalledPeerIsCutOff() throws {
        let (harness, settings) = try Self.setUp()
        let conn = try harness.connect(to: "writer", settings: settings)
        Self.stopReading(conn)
        #expect(try conn.exchange("a") == "reply to a")
        harness.advance(by: .milliseconds(2900))
        #expect(conn.isActive)
        #expect(harness.count("ondisconnect") == 0)
        harness.advance(by: .milliseconds(100))
        #expect(!conn.isActive)
        #expect(harness.count("ondisconnect: send timeout") == 1)
        #expect(harness.logs.contains("send timeout: the peer did not read for 3.0 s, closing"))
    }

    @Test("a peer that reads again before send_timeout keeps its connection")
    func peerThatCatchesUpStays() throws {
        let (harness, settings) = try Self.setUp()
        let slow = try harness.connect(to: "writer", settings: settings)
        let stalled = try harness.connect(to: "writer", settings: settings)
        for conn in [slow, stalled] {
            Self.stopReading(conn)
            _ = try conn.exchange("a")
        }
        harness.advance(by: .seconds(2))
        slow.isWritable = true
        slow.pipeline.fireChannelWritabilityChanged()
        harness.advance(by: .seconds(10))
        // The one still stalled was cut off meanwhile: the deadline was checked.
        #expect(!stalled.isActive)
        #expect(harness.count("ondisconnect: send timeout") == 1)
        #expect(slow.isActive)
        #expect(try slow.exchange("b") == "reply to b")
    }
}

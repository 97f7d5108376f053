import NIOCore
import NIOEmbedded
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging

/// `network_settings.read_timeout` and a Lua service's `onreadtimeout`: what its
/// answer does, and `conn:setreadtimeout(false)`. Virtual time, so each case says
/// what happened just before the deadline and at it. (That the option reaches
/// connections of a running server: `LuaServiceTests.readTimeoutFromConfig`.)
@Suite("Lua read timeouts")
struct LuaReadTimeoutTests {
    /// Answers `onreadtimeout` with whatever the connection asked for ("keep" or
    /// not); "off" turns the timeout off; anything else is echoed.
    static let service = """
        local keep = {}
        module:provides("net", { name = "idle", listener = {
            onincoming = function (conn, data)
                if data == "keep" then keep[conn] = true; conn:write("keeping")
                elseif data == "off" then conn:setreadtimeout(false); conn:write("off")
                else conn:write(data) end
            end,
            onreadtimeout = function (conn)
                conn:write("timeout")
                return keep[conn] == true
            end,
        } })
        """

    private func harness() throws -> ModuleHarness {
        try ModuleHarness(modules: ["idle": Self.service], options: ["modules_enabled": .strings("idle")])
    }

    /// `network_settings = { read_timeout = 30 }`.
    private static func settings() throws -> NetworkSettings { try .parsing(["read_timeout": .integer(30)]) }

    @Test("onreadtimeout runs once read_timeout has passed without data, not before; returning false closes")
    func falseCloses() throws {
        let harness = try harness()
        let conn = try harness.connect(to: "idle", settings: try Self.settings())
        harness.advance(by: .milliseconds(29_900))
        #expect(try conn.sent() == "")
        #expect(conn.isActive)
        harness.advance(by: .milliseconds(100))
        #expect(try conn.sent() == "timeout")
        #expect(!conn.isActive)
    }

    @Test("data restarts the count")
    func dataRestartsTheCount() throws {
        let harness = try harness()
        let conn = try harness.connect(to: "idle", settings: try Self.settings())
        harness.advance(by: .seconds(20))
        #expect(try conn.exchange("ping") == "ping")
        harness.advance(by: .milliseconds(29_900))
        #expect(try conn.sent() == "")
        harness.advance(by: .milliseconds(100))
        #expect(try conn.sent() == "timeout")
    }

    @Test("returning true keeps the connection, and onreadtimeout runs again a read_timeout later")
    func trueKeeps() throws {
        let harness = try harness()
        let conn = try harness.connect(to: "idle", settings: try Self.settings())
        #expect(try conn.exchange("keep") == "keeping")
        harness.advance(by: .seconds(30))
        #expect(try conn.sent() == "timeout")
        #expect(conn.isActive)
        harness.advance(by: .milliseconds(29_900))
        #expect(try conn.sent() == "")
        harness.advance(by: .milliseconds(100))
        #expect(try conn.sent() == "timeout")
        #expect(conn.isActive)
        #expect(try conn.exchange("still served") == "still served")
    }

    @Test("conn:setreadtimeout(false) turns the timeout off")
    func setReadTimeoutFalse() throws {
        let harness = try harness()
        let off = try harness.connect(to: "idle", settings: try Self.settings())
        let witness = try harness.connect(to: "idle", settings: try Self.settings())
        #expect(try off.exchange("off") == "off")
        harness.advance(by: .hours(1))
        // The other connection, silent as long, timed out: the loop's timers ran.
        #expect(try witness.sent() == "timeout")
        #expect(!witness.isActive)
        #expect(try off.sent() == "")
        #expect(off.isActive)
        #expect(try off.exchange("still served") == "still served")
    }
}

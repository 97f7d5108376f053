import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NetHostTestSupport
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging

/// Timeouts given as NaN, negative, infinite or huge numbers of seconds: refused with an
/// error that names where they came from, or clamped, and never a trap that ends the
/// process. Virtual time, on an `EmbeddedChannel`.
@Suite("Timeout values")
struct TimeoutValueTests {
    // MARK: conn:setreadtimeout from Lua

    /// Each chunk names a value; "name!" calls setreadtimeout unprotected, "name" under pcall.
    static let module = """
        local values = { nan = 0/0, negative = -1, huge = math.huge, large = 1e300, two = 2 }
        return {
            onincoming = function (conn, data)
                local name, unprotected = data:match("^(%a+)(!?)$")
                if unprotected == "!" then
                    conn:setreadtimeout(values[name])
                    conn:write("set")
                    return
                end
                local ok, err = pcall(conn.setreadtimeout, conn, values[name])
                conn:write(ok and "ok" or ("error: " .. tostring(err)))
            end,
            onreadtimeout = function (conn)
                conn:write("readtimeout")
                return false
            end,
        }
        """

    /// A Lua-served connection on an `EmbeddedChannel`, with the log kept. It
    /// closes the channel and the runtime when it goes: an open EmbeddedChannel
    /// and its pipeline keep each other, and the connection keeps the runtime.
    final class LuaConnection {
        let loop: EmbeddedEventLoop
        let channel: EmbeddedChannel
        let runtime: LuaRuntime
        let logs: LogCapture
        let disconnects: NIOLockedValueBox<[String?]>

        init(loop: EmbeddedEventLoop, channel: EmbeddedChannel, runtime: LuaRuntime, logs: LogCapture, disconnects: NIOLockedValueBox<[String?]>) {
            self.loop = loop
            self.channel = channel
            self.runtime = runtime
            self.logs = logs
            self.disconnects = disconnects
        }

        deinit {
            _ = try? channel.finish(acceptAlreadyClosed: true)
            runtime.close()
        }

        func send(_ text: String) throws -> String {
            try channel.writeInbound(ByteBuffer(string: text))
            return try received()
        }

        func received() throws -> String {
            var text = ""
            while let buffer = try channel.readOutbound(as: ByteBuffer.self) { text += String(buffer: buffer) }
            return text
        }
    }

    /// Passes every event to the Lua listener and records the disconnect reasons.
    final class Recording: ConnectionListener {
        let inner: any ConnectionListener
        let disconnects = NIOLockedValueBox<[String?]>([])
        init(_ inner: any ConnectionListener) { self.inner = inner }
        func onIncoming(_ connection: Connection, data: ByteBuffer) throws { try inner.onIncoming(connection, data: data) }
        func onReadTimeout(_ connection: Connection) throws -> Bool { try inner.onReadTimeout(connection) }
        func onDisconnect(_ connection: Connection, reason: String?) {
            disconnects.withLockedValue { $0.append(reason) }
            inner.onDisconnect(connection, reason: reason)
        }
    }

    private func luaConnection() throws -> LuaConnection {
        let loop = EmbeddedEventLoop()
        let logs = LogCapture()
        let logger = Logger(label: "test", factory: logs.handler(label:))
        let runtime = try LuaRuntime(loop: loop, options: FixedOptions(), services: ServiceRegistry(),
                                     logger: logger, configDirectory: "/")
        try runtime.state.run(Self.module, chunkName: "=timeouts", results: 1)
        let listener = Recording(runtime.listener(forTableAt: -1, module: "timeouts"))
        runtime.state.stack.pop()
        let channel = EmbeddedChannel(loop: loop)
        try channel.pipeline.syncOperations.addHandler(
            ConnectionHandler(serviceName: "timeouts", listener: listener, settings: NetworkSettings(), logger: logger))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).wait()
        return LuaConnection(loop: loop, channel: channel, runtime: runtime, logs: logs, disconnects: listener.disconnects)
    }

    @Test("NaN and negative seconds are a Lua error naming setreadtimeout, which pcall catches", arguments: [
        ("nan", "expected a number of seconds, got NaN"),
        ("negative", "expected a number of seconds of at least 0, got -1.0"),
    ])
    func luaRefusesInvalid(name: String, reason: String) throws {
        let conn = try luaConnection()
        let answer = try conn.send(name)
        #expect(answer.hasPrefix("error: "), "\(answer)")
        #expect(answer.contains("bad argument #2 to 'setreadtimeout' (\(reason)"), "\(answer)")
        #expect(conn.channel.isActive)  // caught: the connection goes on
    }

    @Test("unprotected, the error fails the callback: that connection closes, with the error logged", arguments: ["nan", "negative"])
    func luaErrorClosesOnlyThatConnection(name: String) throws {
        let conn = try luaConnection()
        #expect(try conn.send(name + "!") == "")
        #expect(!conn.channel.isActive)
        #expect(conn.disconnects.withLockedValue { $0 } == ["error in onincoming callback"])
        #expect(conn.logs.contains("error in onincoming callback"))
        #expect(conn.logs.contains("bad argument #2 to 'setreadtimeout'"))
        // The runtime is unharmed: another connection is served.
        let other = try luaConnection()
        #expect(try other.send("two") == "ok")
    }

    @Test("math.huge and 1e300 are accepted as a year, as good as never", arguments: ["huge", "large"])
    func luaClampsHuge(name: String) throws {
        let conn = try luaConnection()
        #expect(try conn.send(name) == "ok")
        conn.loop.advanceTime(by: .hours(1))  // past the configured 840 s, which the call replaced
        #expect(try conn.received() == "")
        #expect(conn.channel.isActive)
    }

    @Test("a valid read timeout fires on the loop's clock: not at 1.9 s, at 2 s")
    func luaReadTimeoutOnLoopClock() throws {
        let conn = try luaConnection()
        #expect(try conn.send("two") == "ok")
        conn.loop.advanceTime(by: .milliseconds(1900))
        #expect(try conn.received() == "")
        conn.loop.advanceTime(by: .milliseconds(100))
        #expect(try conn.received() == "readtimeout")
        #expect(!conn.channel.isActive)
        #expect(conn.disconnects.withLockedValue { $0 } == ["read timeout"])
    }

    // MARK: network_settings

    private func parse(_ entries: [String: ConfigValue]) -> (NetworkSettings, [String]) {
        var problems: [NetworkSettings.Problem] = []
        let table = ConfigTable(map: Dictionary(uniqueKeysWithValues: entries.map { (ConfigKey.string($0.key), $0.value) }))
        let settings = NetworkSettings(from: table, problems: &problems)
        return (settings, problems.map(\.description))
    }

    @Test("read_timeout and send_timeout refuse NaN, infinity, 0 and negatives, naming the option; the default stays",
          arguments: ["read_timeout", "send_timeout"])
    func settingsRefuseInvalid(option: String) {
        let defaults = NetworkSettings()
        for (value, reason) in [
            (Double.nan, "got NaN"), (.infinity, "expected a finite number of seconds, got infinity"),
            (-.infinity, "expected a positive number of seconds, got -inf"), (-5, "expected a positive number of seconds, got -5.0"),
            (0, "expected a positive number of seconds, got 0"),
        ] {
            let (settings, problems) = parse([option: .number(value)])
            #expect(problems.count == 1, "\(value): \(problems)")
            #expect(problems.first?.hasPrefix("network_settings.\(option): ") == true, "\(problems)")
            #expect(problems.first?.contains(reason) == true, "\(value): \(problems)")
            #expect(settings == defaults)
        }
    }

    @Test("a read_timeout or send_timeout past a year is clamped to a year, without a problem")
    func settingsClampLarge() {
        let (settings, problems) = parse(["read_timeout": .number(1e10), "send_timeout": .number(1e300)])
        #expect(problems.isEmpty, "\(problems)")
        #expect(settings.readTimeout == 365 * 24 * 3600)
        #expect(settings.sendTimeout == 365 * 24 * 3600)
        let (ordinary, none) = parse(["read_timeout": .integer(60), "send_timeout": .number(0.5)])
        #expect(none.isEmpty)
        #expect(ordinary.readTimeout == 60 && ordinary.sendTimeout == 0.5)
    }

    // MARK: A connection made with such settings (from Swift, where nothing checked them)

    final class Echo: ConnectionListener {
        let disconnects = NIOLockedValueBox<[String?]>([])
        func onIncoming(_ connection: Connection, data: ByteBuffer) throws { connection.write(data) }
        func onDisconnect(_ connection: Connection, reason: String?) { disconnects.withLockedValue { $0.append(reason) } }
    }

    private func connection(_ settings: NetworkSettings) throws -> (EmbeddedEventLoop, EmbeddedChannel, Echo) {
        let loop = EmbeddedEventLoop()
        let channel = EmbeddedChannel(loop: loop)
        let echo = Echo()
        try channel.pipeline.syncOperations.addHandler(
            ConnectionHandler(serviceName: "demo_echo", listener: echo, settings: settings, logger: Logger(label: "test")))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).wait()
        return (loop, channel, echo)
    }

    @Test("timeouts of 1e10 s and infinity serve the connection, with a year's timeout")
    func connectionWithHugeTimeouts() throws {
        for huge in [1e10, .infinity] {
            var settings = NetworkSettings()
            settings.readTimeout = huge
            settings.sendTimeout = huge
            let (loop, channel, echo) = try connection(settings)
            defer { _ = try? channel.finish(acceptAlreadyClosed: true) }  // an open channel and its pipeline keep each other
            try channel.writeInbound(ByteBuffer(string: "ping"))
            #expect(try channel.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "ping"))
            loop.advanceTime(by: .hours(1))
            #expect(channel.isActive)
            #expect(echo.disconnects.withLockedValue { $0 }.isEmpty)
        }
    }

    @Test("a NaN or negative read_timeout set from Swift counts as the default, 840 s")
    func connectionWithInvalidTimeouts() throws {
        for invalid in [Double.nan, -1] {
            var settings = NetworkSettings()
            settings.readTimeout = invalid
            settings.sendTimeout = invalid
            let (loop, channel, echo) = try connection(settings)
            defer { _ = try? channel.finish(acceptAlreadyClosed: true) }  // an open channel and its pipeline keep each other
            loop.advanceTime(by: .milliseconds(839_900))
            #expect(channel.isActive, "\(invalid)")
            loop.advanceTime(by: .milliseconds(100))
            #expect(!channel.isActive, "\(invalid)")
            #expect(echo.disconnects.withLockedValue { $0 } == ["read timeout"])
        }
    }
}

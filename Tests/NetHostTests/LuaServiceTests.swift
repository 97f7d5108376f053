import Foundation
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging
import NetHostTestSupport

/// A Lua service serving real TCP connections, through every callback.
@Suite("Lua services over TCP", .serialized)
struct LuaServiceTests {
    private func withProbe(
        options: [String: ConfigValue] = [:],
        _ body: (HostFixture) async throws -> Void
    ) async throws {
        var options = options
        options["modules_enabled"] = options["modules_enabled"] ?? .strings("probe")
        try await HostFixture.running(modules: ["probe": ProbeModule.source], options: options, body)
    }

    @Test("the services' Lua state collects garbage generationally (per-event strings die young)")
    func generationalCollector() async throws {
        // collectgarbage(mode) switches mode and returns the previous one.
        let fixture = try HostFixture(modules: ["gcmode": """
            module:provides("net", { name = "gcmode", listener = {
                onconnect = function (conn) conn:write(collectgarbage("generational") .. "\\n"); conn:close() end } })
            """])
        try await fixture.start(options: ["modules_enabled": .strings("gcmode"), "gcmode_ports": .list(.integer(0))])
        #expect(try fixture.connect(to: "gcmode").readLine() == "generational")
        await fixture.stop()
    }

    @Test("onconnect runs first, onincoming gets the bytes, conn:write answers")
    func connectAndEcho() async throws {
        try await withProbe { fixture in
            let client = try fixture.connect(to: "probe")
            #expect(try client.readLine() == "hello")
            try client.send("echo ping\n")
            #expect(try client.readLine() == "ping")
        }
    }

    @Test("conn:ip, conn:port and conn:serverport name the two ends; proxyip is net_proxy's, absent without it")
    func addresses() async throws {
        try await withProbe { fixture in
            let client = try fixture.connect(to: "probe")
            _ = try client.readLine()
            try client.send("who\n")
            let port = try fixture.port(of: "probe")
            #expect(try client.readLine() == "127.0.0.1 \(client.localPort) \(port) nil")
        }
    }

    /// Asks the probe, over `observer`, how many times ondisconnect ran for the
    /// connection from client port `port`: "N same=BOOL".
    private func disconnects(of port: Int, asking observer: TestClient) throws -> String {
        try observer.send("disconnects \(port)\n")
        return try observer.readLine()
    }

    @Test("each callback sees the same conn value: the one onconnect got comes back in onincoming and ondisconnect")
    func connIdentity() async throws {
        try await withProbe { fixture in
            let observer = try fixture.connect(to: "probe")
            _ = try observer.readLine()
            let port: Int
            do {
                let client = try fixture.connect(to: "probe")
                port = client.localPort
                _ = try client.readLine()
                try client.send("same\n")
                #expect(try client.readLine() == "true")
            }
            var answer = ""
            #expect(fixture.eventually {
                answer = (try? disconnects(of: port, asking: observer)) ?? ""
                return answer.hasPrefix("1 ")
            }, "\(answer)")
            #expect(answer == "1 same=true")
        }
    }

    @Test("conn:close sends what was written, then closes; ondisconnect runs once")
    func closeFlushes() async throws {
        try await withProbe { fixture in
            let observer = try fixture.connect(to: "probe")
            _ = try observer.readLine()
            let client = try fixture.connect(to: "probe")
            _ = try client.readLine()
            try client.send("close\n")
            #expect(try client.readLine() == "bye")
            #expect(try client.waitForPeerClose())
            // A connection that ends after it: once its ondisconnect has run, so has
            // everything the close of the first set off on the same Lua loop.
            let later = try fixture.connect(to: "probe")
            _ = try later.readLine()
            let laterPort = later.localPort
            try later.send("close\n")
            #expect(try later.waitForPeerClose())
            #expect(fixture.eventually { (try? disconnects(of: laterPort, asking: observer)) == "1 same=true" })
            #expect(try disconnects(of: client.localPort, asking: observer) == "1 same=true")
        }
    }

    @Test("a client that hangs up gives ondisconnect")
    func clientHangsUp() async throws {
        try await withProbe { fixture in
            let observer = try fixture.connect(to: "probe")
            _ = try observer.readLine()
            let port: Int
            do {
                let client = try fixture.connect(to: "probe")
                port = client.localPort
                _ = try client.readLine()
            }
            #expect(fixture.eventually { (try? disconnects(of: port, asking: observer)) == "1 same=true" })
        }
    }

    @Test("a Lua error in one connection's callback closes that connection only; a hundred others carry on")
    func errorIsolation() async throws {
        try await withProbe { fixture in
            var others: [TestClient] = []
            for _ in 0 ..< 100 {
                let client = try fixture.connect(to: "probe")
                #expect(try client.readLine() == "hello")
                others.append(client)
            }
            let victim = try fixture.connect(to: "probe")
            _ = try victim.readLine()
            try victim.send("boom\n")
            #expect(try victim.waitForPeerClose())
            #expect(fixture.logs.contains("error in onincoming callback"))
            #expect(fixture.logs.contains("boom from the probe"))
            #expect(fixture.logs.contains("stack traceback"))
            for (index, client) in others.enumerated() {
                try client.send("echo still here \(index)\n")
                #expect(try client.readLine() == "still here \(index)")
            }
        }
    }

    @Test("a writer past max_send_buffer_size is disconnected with a logged reason")
    func sendBufferBound() async throws {
        let settings = ConfigValue.table(ConfigTable(map: [.string("max_send_buffer_size"): .integer(256 * 1024)]))
        try await withProbe(options: ["network_settings": settings]) { fixture in
            let client = try fixture.connect(to: "probe")
            _ = try client.readLine()
            // 64 MiB that the client never reads: the socket buffers fill, then ours.
            try client.send("flood 67108864\n")
            #expect(fixture.eventually(timeout: 10) { fixture.logs.contains("send buffer full") })
            let observer = try fixture.connect(to: "probe")
            _ = try observer.readLine()
            #expect(fixture.eventually {
                (try? { try observer.send("stats\n"); return try observer.readLine() }())?.contains("send buffer full") == true
            })
        }
    }

    @Test("network_settings.send_timeout reaches the connections: a peer that stops reading is disconnected after it")
    func sendTimeoutFromConfig() async throws {
        // (The exact moment, and a peer that catches up in time: SendTimeoutTests, on virtual time.)
        let settings = ConfigValue.table(ConfigTable(map: [.string("send_timeout"): .integer(1)]))
        try await withProbe(options: ["network_settings": settings]) { fixture in
            let client = try fixture.connect(to: "probe")
            _ = try client.readLine()
            // 30 MiB that the client never reads: more than the kernel's buffers take (a few
            // MiB on loopback), less than max_send_buffer_size (32 MiB) even if they took
            // nothing, so writes wait until send_timeout ends them.
            try client.send("flood 31457280\n")
            // With the default, 180 s, this would not come within the wait.
            #expect(fixture.eventually(timeout: 10) {
                fixture.logs.contains("send timeout: the peer did not read for 1.0 s, closing")
            })
            let observer = try fixture.connect(to: "probe")
            _ = try observer.readLine()
            #expect(fixture.eventually {
                (try? { try observer.send("stats\n"); return try observer.readLine() }())?.hasSuffix("reasons=send timeout") == true
            })
        }
    }

    @Test("ondrain runs once a send buffer that had to wait is empty again")
    func drain() async throws {
        try await withProbe { fixture in
            let client = try fixture.connect(to: "probe")
            _ = try client.readLine()
            let observer = try fixture.connect(to: "probe")
            _ = try observer.readLine()
            // More than the kernel's loopback buffers can absorb, so a backlog must form
            // while the client reads nothing. The client waits until the whole flood is
            // written before it reads: a client that reads at once can keep up with the
            // writer (it did under ThreadSanitizer), and then nothing had to wait.
            try client.send("flood 33554432\n")
            #expect(fixture.eventually(timeout: 30) {
                (try? { try observer.send("stats\n"); return try observer.readLine() }())?.contains("floods=1") == true
            })
            let received = try client.read(count: 33_554_432)
            #expect(received.count == 33_554_432)
            try client.send("stats\n")
            let stats = try client.readLine()
            #expect(stats.contains("drains=") && !stats.contains("drains=0"))
        }
    }

    @Test("network_settings.read_timeout reaches the connections: onreadtimeout after that much silence, then the close")
    func readTimeoutFromConfig() async throws {
        // (Returning true, setreadtimeout(false) and the exact moment: LuaReadTimeoutTests, on virtual time.)
        let settings = ConfigValue.table(ConfigTable(map: [.string("read_timeout"): .number(0.5)]))
        try await withProbe(options: ["network_settings": settings]) { fixture in
            let client = try fixture.connect(to: "probe")
            #expect(try client.readLine() == "hello")
            // The default, 840 s, would outlast the client's 5 s wait for this line.
            #expect(try client.readLine() == "timeout")
            #expect(try client.waitForPeerClose())
        }
    }

    @Test("pause stops reading until resume: what arrives meanwhile waits in the socket")
    func pauseResume() async throws {
        // A real socket: on an EmbeddedChannel nothing is read or left unread.
        try await withProbe { fixture in
            let client = try fixture.connect(to: "probe")
            _ = try client.readLine()
            try client.send("pause 0.5\n")
            // Sent once the server has paused, so it arrives while reading is paused
            // (or, on a machine slower than half a second, after: then it passes
            // without showing anything, but never fails for it).
            #expect(try client.readLine() == "paused")
            try client.send("echo after\n")
            #expect(try client.readLine() == "resumed")
            #expect(try client.readLine() == "after")
        }
    }

    @Test("setlistener moves the connection: ondetach, onattach with its data, then the new listener's callbacks")
    func setListener() async throws {
        try await withProbe { fixture in
            let client = try fixture.connect(to: "probe")
            _ = try client.readLine()
            try client.send("switch\n")
            #expect(try client.readLine() == "detached")
            #expect(try client.readLine() == "attached payload")
            try client.send("hi\n")
            #expect(try client.readLine() == "other: hi")
        }
    }

    @Test("setoption sets a socket option")
    func setOption() async throws {
        try await withProbe { fixture in
            let client = try fixture.connect(to: "probe")
            _ = try client.readLine()
            try client.send("option\n")
            #expect(try client.readLine() == "true")
        }
    }

    @Test("graceful stop: the listener closes and open connections get ondisconnect")
    func gracefulStop() async throws {
        let fixture = try HostFixture(modules: ["probe": ProbeModule.source.replacingOccurrences(
            of: "function listener.ondisconnect(conn, reason)",
            with: "function listener.ondisconnect(conn, reason)\n\tio.open(module:get_directory() .. '/stopped', 'w'):write(tostring(reason)):close()"
        )])
        try await fixture.start(options: ["modules_enabled": .strings("probe")])
        let port = try fixture.port(of: "probe")
        let client = try fixture.connect(to: "probe")
        _ = try client.readLine()
        let directory = fixture.directory
        await fixture.server?.shutdown(drainTime: .seconds(2))
        #expect(try client.waitForPeerClose())
        #expect(FileManager.default.fileExists(atPath: directory + "/stopped"))
        #expect(throws: FixtureError.self) { try TestClient(connectingTo: "127.0.0.1", port: port) }
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// Lua code that misbehaves is stopped, and only its own connection pays.
@Suite("Misbehaving Lua", .serialized)
struct MisbehavingLuaTests {
    static let module = """
        local listener = {}
        function listener.onincoming(conn, data)
            if data:match("^loop") then while true do end
            elseif data:match("^hog") then local t = {} for i = 1, 1e9 do t[i] = ("x"):rep(1000) .. i end
            else conn:write(data) end
        end
        module:provides("net", { name = "bad", listener = listener })
        """

    @Test("a callback stuck in a loop is stopped after lua_instruction_budget, with an error naming module and callback")
    func runawayLoop() async throws {
        let fixture = try HostFixture(modules: ["bad": Self.module])
        try await fixture.start(options: [
            "modules_enabled": .strings("bad"), "bad_ports": .list(.integer(0)), "lua_instruction_budget": .integer(1_000_000),
        ])
        let bystander = try fixture.connect(to: "bad")
        let looping = try fixture.connect(to: "bad")
        try looping.send("loop\n")
        #expect(try looping.waitForPeerClose())
        #expect(fixture.logs.contains("module 'bad': callback onincoming ran past its budget of 1000000 Lua instructions"), "\(fixture.logs.all.filter { $0.contains("error") })")
        try bystander.send("alive\n")
        #expect(try bystander.readLine() == "alive")
        await fixture.stop()
    }

    @Test("a callback that allocates past lua_memory_limit gets a memory error; the state recovers")
    func memoryCap() async throws {
        let fixture = try HostFixture(modules: ["bad": Self.module])
        try await fixture.start(options: [
            "modules_enabled": .strings("bad"), "bad_ports": .list(.integer(0)), "lua_memory_limit": .integer(64 << 20),
        ])
        // Filling 64 MiB with Lua strings is quick uninstrumented, but can take well over
        // the default 5 s under ThreadSanitizer, which intercepts every allocation.
        let hog = try fixture.connect(to: "bad", timeout: .seconds(60))
        try hog.send("hog\n")
        #expect(try hog.waitForPeerClose())
        #expect(fixture.logs.contains("not enough memory"))
        let next = try fixture.connect(to: "bad")
        try next.send("fine\n")
        #expect(try next.readLine() == "fine")
        await fixture.stop()
    }
}

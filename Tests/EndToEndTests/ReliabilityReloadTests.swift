import Foundation
import SocketTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// "Live reload. SIGHUP re-reads the config: new or removed proxy_port_mappings ports
// open or close, proxy_trusted_proxies and limits change, established connections
// are untouched and keep their service. A reload whose config has an error changes
// nothing and logs the error with file and line. Reloading a Lua module
// (module.save/module.restore as in Prosody) keeps its connections working."
// (README, "SIGHUP reloads the config"), checked under load against the real binary.

@Suite("Reliability: reload under load")
struct ReliabilityReloadTests {
    /// Connections held open across every reload.
    static let heldCount = 200

    /// A Lua service that counts its connections in a table handed from each version
    /// of the code to the next through `module.save`/`module.restore`, so that every
    /// version (and the connections still running an old one) shares one count.
    ///
    /// `?who\n` answers `v<version> <ip> <port>`, `?count\n` answers
    /// `v<version> open <open> accepted <accepted>`; anything else is echoed.
    static func counterModule(version: Int) -> String {
        #"""
        local version = "v\#(version)"
        local state = { open = 0, accepted = 0 }
        function module.save() return state end
        function module.restore(saved) state = saved end

        local listener = {}
        function listener.onconnect(conn)
        	state.open = state.open + 1
        	state.accepted = state.accepted + 1
        end
        function listener.onincoming(conn, data)
        	if data == "?who\n" then
        		conn:write(version .. " " .. conn:ip() .. " " .. conn:port() .. "\n")
        	elseif data == "?count\n" then
        		conn:write(version .. " open " .. state.open .. " accepted " .. state.accepted .. "\n")
        	else
        		conn:write(data)
        	end
        end
        function listener.ondisconnect(conn)
        	state.open = state.open - 1
        end
        module:provides("net", { name = "counter", listener = listener })
        """#
    }

    /// The config: one `[port] = "counter"` mapping per port, the trust list, the
    /// connection limit, and `broken` to end it with a line that is not Lua (line 6).
    static func config(
        _ paths: NetHostFixture.Paths, ports: [Int], trusted: [String], maxConnections: Int = 100_000, broken: Bool = false
    ) -> String {
        let mappings = ports.map { "[\($0)] = \"counter\"" }.joined(separator: ", ")
        let trust = trusted.map { "\"\($0)\"" }.joined(separator: ", ")
        return """
            plugin_paths = { "\(paths.modulesDirectory)" }
            modules_enabled = { "net_proxy", "counter" }
            interfaces = { "127.0.0.1" }
            proxy_port_mappings = { \(mappings) }
            proxy_trusted_proxies = { \(trust) }
            \(broken ? "network_settings = = { max_connections = 10 }" : "network_settings = { max_connections = \(maxConnections), shed_idle_after = 0 }")

            """
    }

    /// One held connection and the client address its PROXY header gave.
    struct Held {
        let client: TestClient
        let ip: String
        let port: Int
    }

    /// Five reloads while 200 connections are held and new ones keep coming, then a
    /// sixth that lowers the connection limit below the held count. Idle shedding is
    /// off (`shed_idle_after = 0`): under ThreadSanitizer the held connections can sit
    /// idle past its 60 s, and then a new one would take an idle one's place instead
    /// of being refused (IdleSheddingTests covers that).
    @Test
    func connectionsSurviveReloadsAndNewOnesNeverFail() async throws {
        let ports = try (0..<4).map { _ in try FreePort.allocate() }
        let (a, b, c, d) = (ports[0], ports[1], ports[2], ports[3])
        let nethost = try await NetHostFixture.start(
            config: { Self.config($0, ports: [a, c], trusted: ["127.0.0.1", "127.0.0.2"]) },
            modules: ["mod_counter.lua": Self.counterModule(version: 1)],
            readiness: [.listening(host: "127.0.0.1", port: a), .listening(host: "127.0.0.1", port: c)])
        defer { nethost.stop() }
        let paths = nethost.paths
        var probes = 0  // connections of this test that reached the service, besides held and steady ones

        // The held connections, from 127.0.0.2, each with a client address of its own.
        var held: [Held] = []
        for index in 0..<Self.heldCount {
            let ip = "203.0.113.\(index % 250 + 1)"
            let port = 20_000 + index
            let client = try TestClient(connectingTo: "127.0.0.1", port: a, from: "127.0.0.2")
            try client.send("PROXY TCP4 \(ip) 192.0.2.1 \(port) \(a)\r\n?who\n")
            #expect(try client.read(until: "\n") == "v1 \(ip) \(port)\n")
            held.append(Held(client: client, ip: ip, port: port))
        }

        // Counted before: by the service, by the kernel (server ends of established
        // connections from 127.0.0.2 on port A) and by the clients.
        let before = try Self.count(on: held[0].client)
        #expect(before == Count(version: "v1", open: Self.heldCount, accepted: Self.heldCount))
        let establishedBefore = try await Self.waitForEstablished(port: a, from: "127.0.0.2", count: Self.heldCount)
        #expect(establishedBefore == Self.heldCount)
        #expect(held.filter { !$0.client.peerClosed }.count == Self.heldCount)

        // Before any reload: C serves, B is closed, 127.0.0.3 is not trusted.
        #expect(try Self.probe(port: c, from: "127.0.0.1", expecting: "v1"))
        probes += 1
        // The owner-filtered check sees nethost's sockets (so its "no" below means something).
        #expect(try Self.listens(nethost, on: a) && Self.listens(nethost, on: c))
        #expect(try !Self.listens(nethost, on: b))
        #expect(try Self.isClosedWithoutAnswer(port: a, from: "127.0.0.3"))

        let steady = SteadyConnections(port: a, interval: .milliseconds(2))
        defer { steady.cancel() }
        try await steady.waitForSuccesses(20)

        var reloads = 0
        var refusedReloads = 0
        var moduleReloads = 0
        // Steady connections served from each SIGHUP to the next (at least a second).
        var windows: [Int] = []
        var atSignal = 0
        var signalled = ContinuousClock.now
        func reload(config: String, module version: Int?) async throws {
            if atSignal > 0 {
                try await Task.sleep(until: signalled.advanced(by: .seconds(1)))
                windows.append(steady.succeeded - atSignal)
            }
            try config.write(toFile: paths.configFile, atomically: true, encoding: .utf8)
            if let version {
                try Self.counterModule(version: version).write(
                    toFile: paths.modulesDirectory + "/mod_counter.lua", atomically: true, encoding: .utf8)
            }
            atSignal = steady.succeeded
            signalled = ContinuousClock.now
            nethost.process.send(signal: SIGHUP)
        }

        // 1: add B, remove C, trust 127.0.0.3 instead of 127.0.0.2, module v2. The
        // held connections, all from 127.0.0.2, stay; new ones from there are refused.
        let steadyBefore = steady.succeeded
        try await reload(config: Self.config(paths, ports: [a, b], trusted: ["127.0.0.1", "127.0.0.3"]), module: 2)
        reloads += 1
        moduleReloads += 1
        try await Self.waitForReloads(nethost, done: reloads, refused: refusedReloads, modules: moduleReloads)
        try await waitForPortClosed(c, by: nethost)
        try Self.checkHeld(held, round: 1)
        #expect(try Self.probe(port: b, from: "127.0.0.1", expecting: "v2"))
        #expect(try Self.probe(port: a, from: "127.0.0.3", expecting: "v2"))
        probes += 2
        #expect(try Self.isClosedWithoutAnswer(port: a, from: "127.0.0.2"))
        #expect(try !Self.listens(nethost, on: c))

        // 2: a config that is not Lua (line 6), asking for D, 127.0.0.2 again and
        // with module v3 on disk: nothing of it applies.
        try await reload(
            config: Self.config(paths, ports: [a, b, d], trusted: ["127.0.0.1", "127.0.0.2", "127.0.0.3"], broken: true),
            module: 3)
        refusedReloads += 1
        try await Self.waitForReloads(nethost, done: reloads, refused: refusedReloads, modules: moduleReloads)
        let refusal = try await nethost.waitForLogLine(containing: "reload refused")
        #expect(refusal.contains("\(paths.configFile):6:"), "the refusal does not name the file and line: \(refusal)")
        #expect(refusal.contains("unexpected symbol near '='"), "\(refusal)")
        try Self.checkHeld(held, round: 2)
        #expect(try Self.probe(port: a, from: "127.0.0.1", expecting: "v2"))  // still the code of reload 1
        #expect(try Self.probe(port: b, from: "127.0.0.3", expecting: "v2"))
        probes += 2
        #expect(try Self.isClosedWithoutAnswer(port: a, from: "127.0.0.2"))
        #expect(try !Self.listens(nethost, on: d))
        #expect(try !Self.listens(nethost, on: c))

        // 3: the good config again; the module file changed meanwhile (v3) and loads now.
        try await reload(config: Self.config(paths, ports: [a, b], trusted: ["127.0.0.1", "127.0.0.3"]), module: nil)
        reloads += 1
        moduleReloads += 1
        try await Self.waitForReloads(nethost, done: reloads, refused: refusedReloads, modules: moduleReloads)
        try Self.checkHeld(held, round: 3)
        #expect(try Self.probe(port: a, from: "127.0.0.1", expecting: "v3"))
        #expect(try Self.probe(port: b, from: "127.0.0.1", expecting: "v3"))
        probes += 2

        // 4: C comes back, module v4.
        try await reload(config: Self.config(paths, ports: [a, b, c], trusted: ["127.0.0.1", "127.0.0.3"]), module: 4)
        reloads += 1
        moduleReloads += 1
        try await Self.waitForReloads(nethost, done: reloads, refused: refusedReloads, modules: moduleReloads)
        try await waitForPort(host: "127.0.0.1", port: c, timeout: .seconds(5))
        try Self.checkHeld(held, round: 4)
        #expect(try Self.probe(port: c, from: "127.0.0.1", expecting: "v4"))
        #expect(try Self.probe(port: a, from: "127.0.0.3", expecting: "v4"))
        probes += 2

        // 5: C goes again, trust 127.0.0.2 instead of 127.0.0.3, module v5.
        try await reload(config: Self.config(paths, ports: [a, b], trusted: ["127.0.0.1", "127.0.0.2"]), module: 5)
        reloads += 1
        moduleReloads += 1
        try await Self.waitForReloads(nethost, done: reloads, refused: refusedReloads, modules: moduleReloads)
        try await waitForPortClosed(c, by: nethost)
        try Self.checkHeld(held, round: 5)
        #expect(try Self.probe(port: a, from: "127.0.0.2", expecting: "v5"))
        #expect(try Self.probe(port: b, from: "127.0.0.1", expecting: "v5"))
        probes += 2
        #expect(try Self.isClosedWithoutAnswer(port: a, from: "127.0.0.3"))
        #expect(try !Self.listens(nethost, on: c))

        try await Task.sleep(until: signalled.advanced(by: .seconds(1)))
        windows.append(steady.succeeded - atSignal)
        atSignal = 0
        let result = await steady.stop()
        #expect(result.failures.isEmpty, "steady connections failed during the reloads:\n\(result.failures.prefix(10).joined(separator: "\n"))")
        // The load ran through every reload: connections were served before the
        // first SIGHUP and between each SIGHUP and the next.
        #expect(steadyBefore > 0)
        #expect(windows.count == 5 && windows.allSatisfy { $0 > 0 }, "steady connections served per reload: \(windows)")
        #expect(result.versions.keys.contains("v1") && result.versions.keys.contains("v5"), "\(result.versions)")

        // Counted after: every held connection still open, as the clients, the
        // kernel and the service see it; the service counted every connection
        // that reached it, across five versions of its code.
        #expect(held.filter { !$0.client.peerClosed }.count == Self.heldCount)
        let establishedAfter = try await Self.waitForEstablished(port: a, from: "127.0.0.2", count: Self.heldCount)
        #expect(establishedAfter == Self.heldCount)
        let expectedAccepted = Self.heldCount + result.succeeded + probes
        let after = try await Self.waitForCount(on: held[0].client, open: Self.heldCount)
        #expect(after == Count(version: "v1", open: Self.heldCount, accepted: expectedAccepted))
        let fresh = try TestClient(connectingTo: "127.0.0.1", port: a)
        try fresh.send("PROXY TCP4 198.51.100.200 192.0.2.1 4000 \(a)\r\n?count\n")
        #expect(try fresh.read(until: "\n") == "v5 open \(Self.heldCount + 1) accepted \(expectedAccepted + 1)\n")
        fresh.close()

        // 6: the limit drops below the held count: they stay, new connections are refused.
        try await reload(
            config: Self.config(paths, ports: [a, b], trusted: ["127.0.0.1", "127.0.0.2"], maxConnections: Self.heldCount / 2),
            module: nil)
        reloads += 1
        try await Self.waitForReloads(nethost, done: reloads, refused: refusedReloads, modules: moduleReloads)
        #expect(try Self.isClosedWithoutAnswer(port: a, from: "127.0.0.1"))
        try await nethost.waitForLogLine(containing: "max_connections (\(Self.heldCount / 2)) reached")
        try Self.checkHeld(held, round: 6)
        #expect(try Self.count(on: held[0].client) == Count(version: "v1", open: Self.heldCount, accepted: expectedAccepted + 1))

        let log = nethost.log
        #expect(Self.occurrences(of: "config reloaded", in: log) == 5, "\(tail(log))")
        #expect(Self.occurrences(of: "reload refused", in: log) == 1, "\(tail(log))")
        #expect(Self.occurrences(of: "reloaded module 'counter'", in: log) == 4, "\(tail(log))")
        let versions = result.versions.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        print(
            "reload under load: \(Self.heldCount) held connections open before and after \(reloads + refusedReloads) reloads"
                + " (1 refused, the last one lowering max_connections); \(result.succeeded) steady connections on port A,"
                + " \(result.succeeded - steadyBefore) of them from the first SIGHUP on (SIGHUP to next SIGHUP: \(windows)),"
                + " \(result.failures.count) failed; the service counted \(after.accepted) accepted, \(after.open) open;"
                + " steady connections by version: \(versions)")
        #expect(nethost.stop() == .exited(0), "\(tail(nethost.log))")
    }

    // MARK: Checks

    /// Every held connection still runs v1 with its own client address, and echoes
    /// a payload of its own byte for byte.
    static func checkHeld(_ held: [Held], round: Int) throws {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789".utf8)
        for (index, connection) in held.enumerated() {
            try connection.client.send("?who\n")
            let who = try connection.client.read(until: "\n")
            #expect(who == "v1 \(connection.ip) \(connection.port)\n", "held connection \(index), round \(round)")
            let payload = Array("echo \(index) round \(round) ".utf8)
                + (0..<64).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &generator)] } + [0x0a]
            try connection.client.send(payload)
            let echoed = try connection.client.read(until: [0x0a])
            #expect(echoed == payload, "held connection \(index), round \(round)")
            #expect(!connection.client.peerClosed, "held connection \(index) closed in round \(round)")
        }
    }

    /// A new connection from `source` is served by the version of the code `expecting` names.
    static func probe(port: Int, from source: String, expecting version: String) throws -> Bool {
        let client = try TestClient(connectingTo: "127.0.0.1", port: port, from: source)
        defer { client.close() }
        try client.send("PROXY TCP4 198.51.100.99 192.0.2.1 5000 \(port)\r\n?who\n")
        let answer = try client.read(until: "\n")
        return answer == "\(version) 198.51.100.99 5000\n"
    }

    /// Whether a new connection from `source` is closed without a byte of answer
    /// (refused as untrusted, or past max_connections).
    static func isClosedWithoutAnswer(port: Int, from source: String) throws -> Bool {
        let client = try TestClient(connectingTo: "127.0.0.1", port: port, from: source)
        defer { client.close() }
        // A trusted peer would be closed too, but only at the 5 s header timeout.
        guard try client.waitForPeerClose(timeout: .seconds(2)) else { return false }
        return try client.readToEnd(timeout: .seconds(1)).isEmpty
    }

    struct Count: Equatable {
        let version: String
        let open: Int
        let accepted: Int
    }

    /// The service's own count, asked on `client`.
    static func count(on client: TestClient) throws -> Count {
        try client.send("?count\n")
        let answer = try client.read(until: "\n")
        let words = answer.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard words.count == 5, words[1] == "open", words[3] == "accepted", let open = Int(words[2]), let accepted = Int(words[4])
        else {
            throw FixtureError("not a count: \(answer.debugDescription)")
        }
        return Count(version: String(words[0]), open: open, accepted: accepted)
    }

    /// The service's count once `open` connections are open (the last closed ones'
    /// `ondisconnect` may still be on its way), or as it is after 5 s.
    static func waitForCount(on client: TestClient, open: Int) async throws -> Count {
        var last = try count(on: client)
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: .seconds(5))
        while last.open != open, clock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
            last = try count(on: client)
        }
        return last
    }

    /// Server ends of established TCP connections to 127.0.0.1:`port` from
    /// `source` (any port), from the kernel's table, once there are `count` of them
    /// or as many as there are after 5 s. (Matching the addresses too leaves out
    /// other programs' sockets that happen to use the same port number.)
    static func waitForEstablished(port: Int, from source: String, count: Int) async throws -> Int {
        var last = 0
        _ = try await poll(timeout: .seconds(5), interval: .milliseconds(50)) { () -> Bool? in
            last = established(port: port, from: source)
            return last == count ? true : nil
        }
        return last
    }

    static func established(port: Int, from source: String) -> Int {
        guard let table = readWholeFile("/proc/net/tcp") else { return -1 }
        return table.split(separator: "\n").dropFirst().filter { line in
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count > 3, fields[3] == "01",
                  let local = tableAddress(fields[1]), let remote = tableAddress(fields[2])
            else { return false }
            return local.host == "127.0.0.1" && local.port == port && remote.host == source
        }.count
    }

    /// `0100007F:1F90` from `/proc/net/tcp`: the address is the 32-bit word as it
    /// sits in memory, printed as a native integer; the port is plain hex.
    static func tableAddress(_ field: Substring) -> (host: String, port: Int)? {
        let parts = field.split(separator: ":")
        guard parts.count == 2, let word = UInt32(parts[0], radix: 16), let port = Int(parts[1], radix: 16) else { return nil }
        let bytes = withUnsafeBytes(of: word) { Array($0) }
        return (bytes.map(String.init).joined(separator: "."), port)
    }

    /// Waits until nethost has logged `done` applied reloads, `refused` refused ones
    /// and `modules` module reloads.
    static func waitForReloads(_ nethost: NetHostFixture, done: Int, refused: Int, modules: Int) async throws {
        let reached = try await poll(timeout: .seconds(10)) { () -> Bool? in
            let log = nethost.log
            return occurrences(of: "config reloaded", in: log) >= done
                && occurrences(of: "reload refused", in: log) >= refused
                && occurrences(of: "reloaded module 'counter'", in: log) >= modules ? true : nil
        }
        if reached == nil {
            throw FixtureError(
                "nethost did not log \(done) reloads, \(refused) refused, \(modules) module reloads:\n\(tail(nethost.log))")
        }
    }

    static func occurrences(of text: String, in log: String) -> Int {
        log.components(separatedBy: text).count - 1
    }

    /// Waits until nethost no longer listens on 127.0.0.1:`port`. Only nethost's own
    /// sockets count: once it lets a port go, another test's server may take the number.
    func waitForPortClosed(_ port: Int, by nethost: NetHostFixture) async throws {
        let closed = try await poll(timeout: .seconds(5)) { try Self.listens(nethost, on: port) ? nil : true }
        if closed == nil { throw FixtureError("nethost still listens on 127.0.0.1:\(port)") }
    }

    /// Whether nethost itself has a listening socket on 127.0.0.1:`port`.
    static func listens(_ nethost: NetHostFixture, on port: Int) throws -> Bool {
        isListening(try SocketAddressStorage(host: "127.0.0.1", port: port), ownedBy: nethost.process.pid)
    }
}

/// Short proxied connections opened one after another on a thread of their own
/// (`PacedLoop`), `interval` apart, until stopped: each sends a PROXY v1 header and `?who`, checks
/// the answer names the header's client, and closes. Every failure is recorded.
final class SteadyConnections: Sendable {
    struct Result: Sendable {
        var succeeded = 0
        var failures: [String] = []
        /// Answers by version of the service's code.
        var versions: [String: Int] = [:]
    }

    private let result = Locked(Result())
    private let loop: PacedLoop

    init(port: Int, interval: Duration) {
        let result = self.result
        loop = PacedLoop(name: "steady connections", pause: interval) { index in
            Self.connectOnce(port: port, index: index, result: result)
        }
    }

    private static func connectOnce(port: Int, index: Int, result: Locked<Result>) {
        let ip = "198.51.100.\(index % 200 + 1)"
        let clientPort = 30_000 + index % 30_000
        do {
            let client = try TestClient(connectingTo: "127.0.0.1", port: port)
            defer { client.close() }
            try client.send("PROXY TCP4 \(ip) 192.0.2.1 \(clientPort) \(port)\r\n?who\n")
            let answer = try client.read(until: "\n")
            let words = answer.dropLast().split(separator: " ")
            guard words.count == 3, words[0].hasPrefix("v"), words[1] == ip, words[2] == "\(clientPort)" else {
                throw FixtureError("unexpected answer \(answer.debugDescription) for \(ip) \(clientPort)")
            }
            result.withLock {
                $0.succeeded += 1
                $0.versions[String(words[0]), default: 0] += 1
            }
        } catch {
            let when = Date().timeIntervalSince1970
            result.withLock { $0.failures.append("connection \(index) at \(when): \(error)") }
        }
    }

    var succeeded: Int { self.result.current.succeeded }

    /// Waits until `count` connections have been served (throws after 10 s).
    func waitForSuccesses(_ count: Int) async throws {
        let served = try await poll(timeout: .seconds(10)) { self.result.current.succeeded >= count ? true : nil }
        if served == nil {
            throw FixtureError("fewer than \(count) steady connections were served in 10 s: \(self.result.current.failures.prefix(3))")
        }
    }

    /// Asks the thread to stop after the connection under way, without waiting.
    func cancel() {
        loop.cancel()
    }

    /// Stops after the connection under way and returns what happened.
    func stop() async -> Result {
        await loop.stop()
        return self.result.current
    }
}

import Foundation
import SocketTestSupport
import Testing

/// Many hostile connections held open at once against one nethost: 200 silent
/// ones from 20 loopback addresses, each address at `max_pending_headers_per_ip`
/// exactly, and a few more from one of them, past its limit. Good proxied
/// connections must be served while the silent ones wait, from the saturated
/// address too; each connection past the limit sheds one of that address's
/// oldest waiting ones; every other silent one must be closed at the header
/// timeout without being served; and the counters say so.
/// Long enough for the whole middle of the test (200 silent connections opened,
/// the limit passed, good ones served) to happen before any header times out:
/// 15 s, and 60 s under ThreadSanitizer (make sanitize-thread sets TSAN_OPTIONS),
/// where that set-up was seen to take longer than 15 s with the suite beside it.
private let hostileCrowdHeaderTimeoutSeconds = ProcessInfo.processInfo.environment["TSAN_OPTIONS"] == nil ? 15 : 60

@Suite(
    "Hostile crowd: many silent peers at once",
    .serialized,
    .hostileHost(headerTimeout: .seconds(hostileCrowdHeaderTimeoutSeconds), maxPendingHeadersPerIP: 10)
)
struct HostileConcurrencyTests {
    static let headerTimeoutSeconds = hostileCrowdHeaderTimeoutSeconds
    static let crowdAddresses = (0..<20).map { "127.0.0.\(100 + $0)" }
    /// The address that opens more connections than its limit.
    static let greedy = "127.0.0.100"
    static let pastTheLimit = 3
    /// Trusted addresses with nothing pending, for the good connections.
    static let goodSources = ["127.0.0.1"] + (0..<9).map { "127.0.0.\(2 + $0)" }

    @Test("200 silent connections from 20 addresses wait while good ones are served, then all close at the timeout")
    func silentCrowd() async throws {
        let host = try HostileHost.suiteHost()
        let limit = host.maxPendingHeadersPerIP
        let before = try await host.statistics()
        let clock = ContinuousClock()
        let started = clock.now

        // The crowd: `limit` silent connections from each address.
        var silent: [(source: String, client: TestClient)] = []
        for source in Self.crowdAddresses {
            for _ in 0..<limit {
                silent.append((source, try host.connect(from: source)))
            }
        }
        #expect(silent.count == 200)

        // Past the limit: each new connection is admitted and sheds the oldest
        // waiting one of its address. The first shed is logged with the address;
        // its repeats are only counted (and summarised every ten seconds), as the
        // log must not grow with a flood.
        var pastTheLimit: [TestClient] = []
        for _ in 0..<Self.pastTheLimit {
            pastTheLimit.append(try host.connect(from: Self.greedy))
        }
        try await host.logLine([
            " warn [nethost] shed the oldest connection waiting for its PROXY header from this address, to admit a new one (max_pending_headers_per_ip is \(limit))",
            "peer=\(Self.greedy):", "port=\(host.port)",
        ])
        // A good header from the saturated address is served: it sheds one more.
        let saturated = try host.connect(from: Self.greedy)
        let saturatedPort = saturated.localPort
        try saturated.send("PROXY TCP4 198.51.100.200 192.0.2.1 40200 443\r\n")
        let report = try InteropReport.read(from: saturated)
        #expect(report["ip"] == "198.51.100.200" && report["proxyip"] == Self.greedy, "\(report)")
        try expectEchoRoundTrip(saturated, count: 1024, seed: 200)
        saturated.close()
        let shedCount = Self.pastTheLimit + 1
        // The shed ones are the greedy address's, closed unserved; which of its ten were
        // the oldest is up to the order the two event loops registered them in (on
        // virtual time, ProxyHeaderStageTests checks that it is the oldest exactly).
        let greedyOnes = silent.filter { $0.source == Self.greedy }.map(\.client)
        let shedOnes = try await poll(timeout: .seconds(10)) { () -> [TestClient]? in
            let closed = try greedyOnes.filter { try $0.waitForPeerClose(timeout: .milliseconds(1)) }
            return closed.count >= shedCount ? closed : nil
        }
        #expect(shedOnes?.count == shedCount, "the greedy address's connections shed")
        for client in shedOnes ?? [] {
            #expect(try client.readToEnd(timeout: .zero).isEmpty, "a shed connection was served")
        }

        // Meanwhile, good connections from other addresses are served.
        for (n, source) in Self.goodSources.enumerated() {
            try host.expectServesAGoodConnection(n + 1, version: n % 2 + 1, from: source, echoBytes: 1024)
        }
        let middle = try await host.statistics()

        // And the rest of the crowd is still waiting: nothing else closed, nothing served.
        let waited = clock.now - started
        let waiting = silent.filter { entry in !(shedOnes ?? []).contains { $0 === entry.client } } + pastTheLimit.map { (Self.greedy, $0) }
        let closedEarly = try waiting.filter { try $0.client.waitForPeerClose(timeout: .milliseconds(1)) }
        #expect(closedEarly.isEmpty,
                "\(closedEarly.count) silent connections were closed \(waited) in, before the \(host.headerTimeout) header timeout")
        #expect(HostileInputTests.difference(before, middle) == [
            "proxied": Self.goodSources.count + 1, "shed": shedCount, "shed.perAddress": shedCount,
        ], "after \(waited)")

        // At the timeout every silent connection still waiting is closed, none served.
        #expect(waiting.count == silent.count + Self.pastTheLimit - shedCount)
        let deadline = started + host.headerTimeout + .seconds(10)
        for (source, client) in waiting {
            let remaining = max(deadline - clock.now, .milliseconds(1))
            #expect(try client.waitForPeerClose(timeout: remaining), "a silent connection from \(source) was never closed")
            let served = try client.readToEnd(timeout: .zero)
            #expect(served.isEmpty, "\(source) was served: \(printable(served))")
            client.close()
        }
        // One line per address (repeats from one address are summarised later).
        for source in Self.crowdAddresses {
            try await host.logLine([
                " warn [nethost] no complete PROXY header within \(Self.headerTimeoutSeconds).0 s", "peer=\(source):", "received_bytes=0",
            ])
        }
        #expect(InteropReport.logged(in: host.log).allSatisfy { report in
            !Self.crowdAddresses.contains(report["proxyip"] ?? "") || report["proxyport"] == "\(saturatedPort)"
        }, "the service saw a silent connection")

        // The slots are free again: the greedy address is served now.
        try host.expectServesAGoodConnection(300, version: 2, from: Self.greedy)
        let after = try await host.statistics()
        #expect(HostileInputTests.difference(before, after) == [
            "proxied": Self.goodSources.count + 2, "shed": shedCount, "shed.perAddress": shedCount, "timeout": waiting.count,
        ])
        #expect(host.fixture.process.isRunning)
    }
}

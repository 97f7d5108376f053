import Foundation
import SocketTestSupport
import Testing

/// Many hostile connections held open at once against one nethost: 200 silent
/// ones from 20 loopback addresses, each address at `max_pending_headers_per_ip`
/// exactly, and a few more from one of them, past its limit. Good proxied
/// connections must be served while the silent ones wait; every silent one must
/// be closed at the header timeout without being served; the ones past the limit
/// are refused at once; and the counters say so.
@Suite(
    "Hostile crowd: many silent peers at once",
    .serialized,
    .hostileHost(headerTimeout: .seconds(5), maxPendingHeadersPerIP: 10)
)
struct HostileConcurrencyTests {
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

        // Past the limit: refused at once, not served. The first refusal is
        // logged with the address; its repeats are only counted (and summarised
        // every ten seconds), as the log must not grow with a flood.
        var refusedPorts: [Int] = []
        for _ in 0..<Self.pastTheLimit {
            let refused = try host.connect(from: Self.greedy)
            refusedPorts.append(refused.localPort)
            #expect(try refused.waitForPeerClose(timeout: .seconds(5)), "a connection past the limit was kept open")
            #expect(try refused.readToEnd(timeout: .zero).isEmpty)
        }
        try await host.logLine([
            " warn [nethost] refused a connection: this address already has \(limit) connections waiting for their PROXY header (max_pending_headers_per_ip)",
            "peer=\(Self.greedy):\(refusedPorts[0])", "port=\(host.port)",
        ])
        // A good header from the saturated address is refused too: the limit
        // counts connections, before any byte of theirs is read.
        let saturated = try host.connect(from: Self.greedy)
        _ = try saturated.sendUnlessClosed(Array("PROXY TCP4 198.51.100.200 192.0.2.1 40200 443\r\n".utf8))
        #expect(try saturated.waitForPeerClose(timeout: .seconds(5)))
        #expect(try saturated.readToEnd(timeout: .zero).isEmpty)

        // Meanwhile, good connections from other addresses are served.
        for (n, source) in Self.goodSources.enumerated() {
            try host.expectServesAGoodConnection(n + 1, version: n % 2 + 1, from: source, echoBytes: 1024)
        }
        let middle = try await host.statistics()

        // And the crowd is still waiting: nothing closed, nothing served.
        let waited = clock.now - started
        let closedEarly = try silent.filter { try $0.client.waitForPeerClose(timeout: .milliseconds(1)) }
        #expect(closedEarly.isEmpty,
                "\(closedEarly.count) silent connections were closed \(waited) in, before the \(host.headerTimeout) header timeout")
        #expect(HostileInputTests.difference(before, middle) == [
            "proxied": Self.goodSources.count, "over_limit": Self.pastTheLimit + 1,
        ], "after \(waited)")

        // At the timeout every silent connection is closed, none served.
        let deadline = started + host.headerTimeout + .seconds(10)
        for (source, client) in silent {
            let remaining = max(deadline - clock.now, .milliseconds(1))
            #expect(try client.waitForPeerClose(timeout: remaining), "a silent connection from \(source) was never closed")
            let served = try client.readToEnd(timeout: .zero)
            #expect(served.isEmpty, "\(source) was served: \(printable(served))")
            client.close()
        }
        // One line per address (repeats from one address are summarised later).
        for source in Self.crowdAddresses {
            try await host.logLine([
                " warn [nethost] no complete PROXY header within 5.0 s", "peer=\(source):", "received_bytes=0",
            ])
        }
        #expect(InteropReport.logged(in: host.log).allSatisfy { !Self.crowdAddresses.contains($0["proxyip"] ?? "") },
                "the service saw a silent connection")

        // The slots are free again: the greedy address is served now.
        try host.expectServesAGoodConnection(300, version: 2, from: Self.greedy)
        let after = try await host.statistics()
        #expect(HostileInputTests.difference(before, after) == [
            "proxied": Self.goodSources.count + 1, "over_limit": Self.pastTheLimit + 1, "timeout": silent.count,
        ])
        #expect(host.fixture.process.isRunning)
    }
}

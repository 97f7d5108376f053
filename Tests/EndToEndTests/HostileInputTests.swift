import Foundation
import Testing

/// The hostile peers of ``HostileInput/all`` against one running nethost, one at a
/// time, each from its own loopback address. For each: nethost closes the
/// connection (unless the peer left first) without serving it a byte, logs a line
/// naming the peer's address and port and what was wrong, and counts exactly that
/// outcome; then a good proxied connection is still served with exactly the
/// address in its header, and its bytes echo back unchanged.
///
/// One at a time so that each case can read the counters (SIGUSR1) before and
/// after itself and find that only its own outcome, and its liveness check's
/// `proxied`, moved.
@Suite(
    "Hostile peers against one running nethost",
    .serialized,
    .hostileHost(headerTimeout: .seconds(1), maxPendingHeadersPerIP: 4)
)
struct HostileInputTests {
    @Test("closed, not served, logged with its address, counted; a good connection is served after it",
          arguments: HostileInput.all)
    func hostilePeer(_ input: HostileInput) async throws {
        let host = try HostileHost.suiteHost()
        let before = try await host.statistics()

        let connectedAt = ContinuousClock.now
        let client = try host.connect(from: input.source)
        let localPort = client.localPort
        try #require(client.localAddress.description == "\(input.source):\(localPort)", "bound to \(client.localAddress)")

        // What the peer does, and whether nethost closed the connection on it.
        let closedByServer: Bool?
        switch input.behaviour {
        case .send(let bytes):
            _ = try client.sendUnlessClosed(bytes)
            closedByServer = try client.waitForPeerClose(timeout: self.closeBound(host))
        case .drip(let bytes, let interval):
            var sent = 0
            for byte in bytes {
                guard try client.sendUnlessClosed([byte]) else { break }
                sent += 1
                if try client.waitForPeerClose(timeout: interval) { break }
            }
            #expect(sent < bytes.count, "the whole header went out one byte at a time before nethost closed")
            closedByServer = try client.waitForPeerClose(timeout: self.closeBound(host))
        case .sendThenHalfClose(let bytes):
            try client.send(bytes)
            client.shutdownWrite()
            closedByServer = try client.waitForPeerClose(timeout: self.closeBound(host))
        case .sendThenClose(let bytes):
            try client.send(bytes)
            client.close()
            closedByServer = nil
        case .sendThenReset(let bytes):
            try client.send(bytes)
            // Reset once nethost has accepted and read: a reset before the accept is a
            // connection it never knew the peer of. The kernel says when it holds none
            // of the bytes for nethost any more.
            let read = try await poll(timeout: .seconds(5), interval: .milliseconds(5)) {
                Self.unreadBytes(serverPort: host.port, clientPort: localPort) == 0 ? true : nil
            }
            try #require(read == true, "nethost did not read the \(bytes.count) bytes")
            client.reset()
            closedByServer = nil
        }
        // A reset sent when half the header timeout had passed already (nethost took
        // that long to read the bytes: a loaded machine, ThreadSanitizer) races the
        // timeout, which may close the connection first: closed, logged and counted all
        // the same, under the other outcome.
        var outcome = input.outcome
        var logText = input.logText
        var receivedBytes = input.receivedBytes
        if case .sendThenReset(let bytes) = input.behaviour, ContinuousClock.now - connectedAt > host.headerTimeout / 2 {
            let timedOut = try? await host.logLine(
                ["no complete PROXY header within", "peer=\(input.source):\(localPort)"], timeout: .seconds(3)
            )
            if timedOut != nil {
                (outcome, logText, receivedBytes) = (.timeout, "no complete PROXY header within", bytes.count)
            }
        }

        if let closedByServer {
            #expect(closedByServer, "nethost kept the connection open for \(self.closeBound(host))")
            let served = try client.readToEnd(timeout: .zero)
            #expect(served.isEmpty, "nethost served the hostile peer: \(printable(served))")
        }
        client.close()

        // The log names the peer, its port and what was wrong.
        var parts = ["[nethost] \(logText)", "peer=\(input.source):\(localPort)", "port=\(host.port)"]
        if outcome == input.outcome { parts[0] = " \(input.logLevel) " + parts[0] }
        if let count = receivedBytes { parts.append("received_bytes=\(count)") }
        // The limit that closed it (when it runs out exactly: ProxyHeaderStageTests, on virtual time).
        if outcome == .timeout { parts.append("within \(Double(host.headerTimeout.milliseconds) / 1000) s") }
        try await host.logLine(parts)

        // The service never saw it, nor the address it claimed.
        #expect(host.servedConnections(from: input.source, port: localPort).isEmpty, "the service saw the hostile peer")
        if let spoofed = input.spoofedClient {
            #expect(InteropReport.logged(in: host.log).allSatisfy { $0["ip"] != spoofed },
                    "the service was given the spoofed address \(spoofed)")
        }

        // Liveness: a good proxied connection is served, its address exactly as sent.
        try host.expectServesAGoodConnection(input.index, version: input.index % 2 + 1)
        #expect(host.fixture.process.isRunning)

        // The counters moved by exactly this case's outcome, and the liveness check's.
        let after = try await host.statistics()
        var expected = ["proxied": 1, outcome.rawValue: 1]
        if let reason = input.reason { expected["invalid.\(reason)"] = 1 }
        #expect(Self.difference(before, after) == expected)
    }

    /// How long nethost may take to close: at once for a refusal, at the header
    /// timeout for a peer that stalls; generous either way.
    private func closeBound(_ host: HostileHost) -> Duration {
        host.headerTimeout + .seconds(5)
    }

    /// How many bytes the kernel holds for nethost, unread, on its end of the
    /// loopback connection from `clientPort` (`/proc/net/tcp`'s rx_queue); nil if
    /// there is no such connection.
    static func unreadBytes(serverPort: Int, clientPort: Int) -> Int? {
        guard let table = readWholeFile("/proc/net/tcp") else { return nil }  // (its size reads as 0)
        for line in table.split(separator: "\n").dropFirst() {
            // sl local_address rem_address st tx_queue:rx_queue ...; ports in hex.
            let fields = line.split(separator: " ")
            guard fields.count > 4,
                  let local = fields[1].split(separator: ":").last.flatMap({ Int($0, radix: 16) }),
                  let remote = fields[2].split(separator: ":").last.flatMap({ Int($0, radix: 16) }),
                  local == serverPort, remote == clientPort,
                  let unread = fields[4].split(separator: ":").last.flatMap({ Int($0, radix: 16) })
            else { continue }
            return unread
        }
        return nil
    }

    /// The counters that changed, by how much.
    static func difference(_ before: [String: Int], _ after: [String: Int]) -> [String: Int] {
        var changed: [String: Int] = [:]
        for key in Set(before.keys).union(after.keys) {
            let delta = after[key, default: 0] - before[key, default: 0]
            if delta != 0 { changed[key] = delta }
        }
        return changed
    }
}

import Foundation
import NetHost
import NetHostTestSupport
import Testing

extension NetProxyEndToEnd {
    /// proxy_header_timeout bounds the whole header, from accept: a silent
    /// peer and a peer that drips bytes are both cut off when it runs out.
    @Suite("Header timeout")
    struct Timeout {
        private static func options(_ ports: [Int]) -> [String: ConfigValue] { ["proxy_header_timeout": .number(0.5)] }

        @Test("a timeout under 3 s is used, with a warning at start")
        func shortTimeoutWarns() async throws {
            try await withProxyHost(options: Self.options) { host in
                let warning = host.logLine("proxy_header_timeout is 0.5 s; the PROXY specification advises at least 3 s")
                #expect(warning?.hasPrefix("warning ") == true)
                #expect(host.fixture.server?.problems.all.contains { $0.contains("proxy_header_timeout is 0.5 s") } == true)
            }
        }

        @Test("a client that sends nothing is closed after the timeout, with a log line")
        func silentClient() async throws {
            try await withProxyHost(options: Self.options) { host in
                let client = try host.connect()
                let start = ContinuousClock.now
                #expect(try client.readToEnd().isEmpty)
                let elapsed = seconds(since: start)
                #expect(elapsed > 0.4 && elapsed < 1.5, "closed after \(elapsed) s")
                let line = host.logLine("no complete PROXY header within 0.5 s", "received_bytes=0",
                                        "peer=127.0.0.1:\(client.localPort)")
                #expect(line?.hasPrefix("warning ") == true)
                #expect(try host.servesAGoodConnection())
            }
        }

        @Test("a client that drips a header slower than the timeout is closed when it runs out, mid-header")
        func drippingClient() async throws {
            try await withProxyHost(options: Self.options) { host in
                let client = try DripSocket(port: host.port)
                let start = ContinuousClock.now
                // 45 bytes, one every 50 ms: 2.25 s if the server waited for all of them.
                client.drip(Array(Headers.v1TCP4.utf8), pause: 0.05)
                #expect(client.isClosedByPeer())
                let elapsed = seconds(since: start)
                #expect(elapsed > 0.4 && elapsed < 1.5, "closed after \(elapsed) s")
                let line = host.logLine("no complete PROXY header within 0.5 s", "received_bytes=")
                let received = line.flatMap { $0.split(separator: "received_bytes=").last?.split(separator: " ").first }.flatMap { Int($0) }
                #expect(received.map { (3 ... 20).contains($0) } == true, "\(line ?? "no log line")")
                #expect(try host.servesAGoodConnection())
            }
        }

        @Test("a header completed in time is served, and the timer does not fire afterwards")
        func completedInTime() async throws {
            try await withProxyHost(options: Self.options) { host in
                let client = try host.connect()
                try client.send(Headers.v1TCP4)
                #expect(try client.report()["ip"] == "203.0.113.7")
                usleep(800_000)
                try client.send("after the timeout\n")
                #expect(try client.readLine() == "after the timeout")
                #expect(!host.logs.contains("no complete PROXY header"))
            }
        }
    }
}

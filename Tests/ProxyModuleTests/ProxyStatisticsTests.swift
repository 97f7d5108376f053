import Foundation
import NetHost
import NetHostTestSupport
import Testing

extension NetProxyEndToEnd {
    /// The counters an operator reads with SIGUSR1 (`NetHostServer.logStatistics`):
    /// one line per port, every outcome, and the rejected headers by reason.
    @Suite("Statistics")
    struct Statistics {
        @Test("logStatistics writes one line per port with each outcome counted and the invalid headers by reason")
        func oneLinePerPort() async throws {
            try await withProxyHost(extraPorts: 1, options: { ports in
                ["proxy_ports": .list(.integer(ports[0]), .integer(ports[1]))]
            }) { host in
                #expect(try host.servesAGoodConnection())
                #expect(try host.servesAGoodConnection())
                let junk = try host.connect()
                try junk.send("GET / HTTP/1.1\r\n\r\n")
                #expect(try junk.readToEnd().isEmpty)
                let badPort = try host.connect()
                try badPort.send("PROXY TCP4 203.0.113.7 192.0.2.1 51234 65536\r\n")
                #expect(try badPort.readToEnd().isEmpty)
                do {
                    let early = try host.connect()
                    try early.send("PROXY TCP4 ")
                }
                #expect(host.logLine("before the PROXY header was complete") != nil)

                let server = try #require(host.fixture.server)
                server.logStatistics()
                let line = try #require(host.logLine("PROXY connections by outcome", "port=\(host.port) "),
                                        "log:\n\(host.logs.all.joined(separator: "\n"))")
                #expect(line == "info PROXY connections by outcome since start closed_early=1 hand_over_failed=0 invalid=2 invalid.badPort=1 "
                    + "invalid.badSignature=1 local=0 module=net_proxy no_service=0 port=\(host.port) "
                    + "proxied=2 shed=0 timeout=0 unknown_addresses=0 untrusted=0")
                // The second port counted nothing: still a line, all zeros.
                let quiet = try #require(host.logLine("PROXY connections by outcome", "port=\(host.ports[1]) "))
                #expect(quiet.contains("closed_early=0 hand_over_failed=0 invalid=0 local=0 module=net_proxy no_service=0 "
                    + "port=\(host.ports[1]) proxied=0 shed=0 timeout=0 unknown_addresses=0 untrusted=0"))
                #expect(!quiet.contains("invalid."))
            }
        }
    }
}

import Foundation
import NetHost
import NetHostTestSupport
import Testing

extension NetProxyEndToEnd {
    /// proxy_header_timeout from the config reaches a real server's connections.
    /// (When exactly the limit runs out, for silent and dripping peers, and that a
    /// header completed in time leaves no limit behind: ProxyHeaderStageTests, on
    /// virtual time.)
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

        @Test("a client that sends nothing is closed by the configured timeout, with a log line; the server carries on")
        func silentClient() async throws {
            try await withProxyHost(options: Self.options) { host in
                let client = try host.connect()
                // The positive event: the server closes. Which limit closed it, the log line says.
                #expect(try client.readToEnd().isEmpty)
                let line = host.logLine("no complete PROXY header within 0.5 s", "received_bytes=0",
                                        "peer=127.0.0.1:\(client.localPort)")
                #expect(line?.hasPrefix("warning ") == true)
                #expect(try host.servesAGoodConnection())
            }
        }
    }
}

import Foundation
import SocketTestSupport
import Testing

// "The metrics module serves the process's metrics in Prometheus' text format at GET
// /metrics on metrics_ports, loopback by default" (README, "Metrics"): the real
// binary, traffic of each kind, the page checked by promtool and by value.

@Suite("CommandLine: the metrics page")
struct CommandLineMetricsTests {
    /// A Lua service that counts lines with module:metric and fails on "boom".
    static let fragileModule = #"""
        local lines = module:metric("counter", "lines", "", "lines received", {}):with_labels()
        local listener = {}
        function listener.onincoming(conn, data)
        	lines:add(1)
        	if data:match("^boom") then error("boom on purpose") end
        	conn:write("ok\n")
        end
        module:provides("net", { name = "fragile", listener = listener })
        """#

    @Test
    func thePageCountsTheTrafficAndPassesPromtool() async throws {
        let workspace = try CommandLineWorkspace(prefix: "metrics")
        let proxyPort = try FreePort.allocate()
        let whoamiPort = try FreePort.allocate()
        let fragilePort = try FreePort.allocate()
        let metricsPort = try FreePort.allocate()
        try workspace.write(Self.fragileModule, to: "plugins/mod_fragile.lua")
        let config = try workspace.write(
            """
            plugin_paths = { "plugins" }
            modules_enabled = { "net_proxy", "demo_whoami", "metrics", "fragile" }
            interfaces = { "127.0.0.1" }
            proxy_port_mappings = { [\(proxyPort)] = "demo_whoami" }
            proxy_trusted_proxies = { "127.0.0.1" }
            demo_whoami_ports = { \(whoamiPort) }
            fragile_ports = { \(fragilePort) }
            metrics_ports = { \(metricsPort) } -- no metrics_interfaces: loopback by default

            """,
            to: "prosody.cfg.lua")
        let nethost = try await workspace.startListening(
            ["--config", config], on: [("127.0.0.1", proxyPort), ("127.0.0.1", whoamiPort), ("127.0.0.1", metricsPort)]
        )
        defer { nethost.stop() }

        // One valid PROXY connection, one invalid header, one plain connection, and a
        // Lua callback that fails once.
        let proxied = try TestClient(connectingTo: "127.0.0.1", port: proxyPort)
        try proxied.send("PROXY TCP4 203.0.113.7 127.0.0.1 5555 \(proxyPort)\r\n")
        #expect(String(decoding: try proxied.readToEnd(), as: UTF8.self) == "203.0.113.7 5555\n")
        let invalid = try TestClient(connectingTo: "127.0.0.1", port: proxyPort)
        try invalid.send("GET / HTTP/1.1\r\n\r\n")
        #expect(try invalid.readToEnd().isEmpty, "an invalid header was answered")
        let plain = try TestClient(connectingTo: "127.0.0.1", port: whoamiPort)
        #expect(String(decoding: try plain.readToEnd(), as: UTF8.self) == "127.0.0.1 \(plain.localPort)\n")
        let fragile = try TestClient(connectingTo: "127.0.0.1", port: fragilePort)
        try fragile.send("hello\n")
        #expect(try fragile.readLine() == "ok")
        try fragile.send("boom\n")
        #expect(try fragile.waitForPeerClose(), "the failing callback did not close its connection")

        // Counted as each connection is handed over or closes, which its client may
        // see first: the page is read until the last of them shows (the bound only
        // fails the test), then every value is checked exactly.
        let whoamiProxied = #"nethost_connections_opened_total{service="demo_whoami",port="\#(proxyPort)"}"#
        let whoamiPlainClosed = #"nethost_connections_closed_total{service="demo_whoami",port="\#(whoamiPort)"}"#
        let fragileClosed = #"nethost_connections_closed_total{service="fragile",port="\#(fragilePort)"}"#
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(10)
        var page = try Self.scrape(port: metricsPort)
        while Self.values(page.body)[#"nethost_proxy_connections_total{port="\#(proxyPort)",outcome="proxied"}"#] != 1
            || Self.values(page.body)[whoamiPlainClosed] != 1 || Self.values(page.body)[fragileClosed] != 1,
            clock.now < deadline
        {
            try await Task.sleep(for: .milliseconds(20))
            page = try Self.scrape(port: metricsPort)
        }

        #expect(page.head.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(page.head)")
        #expect(page.head.contains("Content-Type: text/plain; version=0.0.4"), "\(page.head)")
        let promtool = try Self.promtool(page.body)
        #expect(promtool.status == 0, "promtool check metrics: \(promtool.output)\n\(page.body)")

        let values = Self.values(page.body)
        func value(_ series: String) -> Double? { values[series] }
        #expect(value(#"nethost_proxy_connections_total{port="\#(proxyPort)",outcome="proxied"}"#) == 1, "\(page.body)")
        #expect(value(#"nethost_proxy_connections_total{port="\#(proxyPort)",outcome="invalid"}"#) == 1)
        let reasons = values.filter { $0.key.hasPrefix(#"nethost_proxy_rejections_total{port="\#(proxyPort)",outcome="invalid",reason="#) }
        // "GET / HTTP/1.1" is neither PROXY v1's "PROXY " nor v2's signature.
        #expect(reasons == [#"nethost_proxy_rejections_total{port="\#(proxyPort)",outcome="invalid",reason="badSignature"}"#: 1], "\(reasons)")
        #expect(value(#"nethost_proxy_header_seconds_count{port="\#(proxyPort)"}"#) == 1)
        #expect(value(#"nethost_proxy_handoff_seconds_count{port="\#(proxyPort)"}"#) == 1)
        // Accepted by the service: one behind the PROXY port, one directly.
        #expect(value(whoamiProxied) == 1)
        #expect(value(#"nethost_connections_opened_total{service="demo_whoami",port="\#(whoamiPort)"}"#) == 1)
        #expect(value(whoamiPlainClosed) == 1)
        #expect(value(#"nethost_connections_open{service="demo_whoami",port="\#(whoamiPort)"}"#) == 0)
        #expect(value(#"nethost_connections_opened_total{service="fragile",port="\#(fragilePort)"}"#) == 1)
        #expect(value(#"nethost_lua_callback_errors_total{module="fragile",callback="onincoming"}"#) == 1)
        #expect(value("prosody_mod_fragile_lines_total") == 2)
        // "hello\n" and "boom\n" in, "ok\n" out; whoami wrote its two answers.
        #expect(value(#"nethost_service_received_bytes_total{service="fragile"}"#) == 11)
        #expect(value(#"nethost_service_written_bytes_total{service="fragile"}"#) == 3)
        #expect(value(#"nethost_service_written_bytes_total{service="demo_whoami"}"#) == Double("203.0.113.7 5555\n127.0.0.1 \(plain.localPort)\n".utf8.count))
        #expect(value(#"nethost_build_info{version="0.1.0"}"#) == 1)
        #expect((value("nethost_open_fds") ?? 0) > 0)
        #expect((value("nethost_lua_memory_bytes") ?? 0) > 0)
        // One series per loop from the start (measured once a second, so not its value).
        #expect(value(#"nethost_event_loop_lag_seconds{loop="0"}"#) != nil)
        #expect(value(#"nethost_reloads_total{result="applied"}"#) == 0)
        #expect(value("nethost_tls_handshake_timeouts_total") == 0)

        // A reload is counted by its result.
        nethost.send(signal: SIGHUP)
        _ = try await nethost.waitForLogLine(containing: "config reloaded")
        #expect(Self.values(try Self.scrape(port: metricsPort).body)[#"nethost_reloads_total{result="applied"}"#] == 1)

        // The page is the only one, and only on loopback's port.
        let other = try Self.request("GET /other HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", port: metricsPort)
        #expect(other.hasPrefix("HTTP/1.1 404 Not Found\r\n"), "\(other)")
    }

    /// GET /metrics over a real socket: the head and the body.
    static func scrape(port: Int) throws -> (head: String, body: String) {
        let response = try request("GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", port: port)
        guard let split = response.range(of: "\r\n\r\n") else { throw FixtureError("no end of head in: \(response)") }
        return (String(response[..<split.upperBound]), String(response[split.upperBound...]))
    }

    static func request(_ text: String, port: Int) throws -> String {
        let client = try TestClient(connectingTo: "127.0.0.1", port: port)
        try client.send(text)
        return String(decoding: try client.readToEnd(), as: UTF8.self)
    }

    /// Each sample line of the page (`series value`) by its series (`name{labels}`).
    static func values(_ page: String) -> [String: Double] {
        var values: [String: Double] = [:]
        for line in page.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            values[String(line[..<space])] = value
        }
        return values
    }

    /// `promtool check metrics < page` (Debian's `prometheus` package; scripts/install-deps --test).
    static func promtool(_ page: String) throws -> (status: Int32, output: String) {
        let path: String
        do {
            path = try ManagedProcess.resolveExecutable("promtool")
        } catch {
            throw FixtureError("promtool is needed by this test but is not installed (\(error)); install it with: apt-get install prometheus")
        }
        let directory = try TemporaryDirectory(prefix: "promtool")
        let pagePath = try directory.write(page, to: "page.txt")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = ["check", "metrics"]
        process.standardInput = try FileHandle(forReadingFrom: URL(fileURLWithPath: pagePath))
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, text)
    }
}

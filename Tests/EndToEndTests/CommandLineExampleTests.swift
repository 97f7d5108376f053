import Foundation
import SocketTestSupport
import Testing

/// The repository's `prosody.cfg.lua.example` with its fixed ports replaced by free
/// ones (plain text replacement, so the rest is exactly what users run).
struct CommandLineExampleConfig {
    /// The example's ports: plain services, then the PROXY ports of `proxy_port_mappings`.
    static let fixedPorts = ["demo_echo": 7777, "demo_client_info": 7780, "demo_whoami": 7781,
                             "proxy_echo": 17777, "proxy_client_info": 17780, "proxy_whoami": 17781]

    /// Name (as in ``fixedPorts``) -> the free port that replaced it.
    let ports: [String: Int]
    let text: String

    init(prepending prefix: String = "") throws {
        let original = try String(
            contentsOfFile: CommandLineWorkspace.packageRoot + "/prosody.cfg.lua.example", encoding: .utf8)
        var ports: [String: Int] = [:]
        var byNumber: [Int: Int] = [:]
        for (name, fixed) in Self.fixedPorts {
            let free = try FreePort.allocate()
            ports[name] = free
            byNumber[fixed] = free
        }
        for (name, fixed) in Self.fixedPorts {
            try #require(
                original.firstMatch(of: try Regex("\\b\(fixed)\\b")) != nil,
                "the example no longer uses port \(fixed) (\(name)); update this test")
        }
        let replaced = original.replacing(/\b(17777|17780|17781|7777|7780|7781)\b/) { match in
            "\(byNumber[Int(match.1)!]!)"
        }
        for fixed in Self.fixedPorts.values {
            try #require(replaced.firstMatch(of: try Regex("\\b\(fixed)\\b")) == nil)
        }
        self.ports = ports
        self.text = prefix + replaced
    }

    func port(_ name: String) -> Int { self.ports[name]! }

    var allPorts: [Int] { Array(self.ports.values) }
}

@Suite("CommandLine: the README's example")
struct CommandLineExampleTests {
    /// `nethost --config prosody.cfg.lua.example`, from the repository folder, as the
    /// README says; then its `nc` lines: echo, and a PROXY v1 header to client_info.
    @Test
    func theExampleConfigRunsAsTheReadmeSays() async throws {
        let example = try CommandLineExampleConfig()
        let workspace = try CommandLineWorkspace(prefix: "example")
        let config = try workspace.write(example.text, to: "prosody.cfg.lua.example")
        let listening = example.allPorts.flatMap { CommandLineWorkspace.onLoopbacks($0) }
        let nethost = try await workspace.startListening(
            ["--config", config], on: listening, workingDirectory: CommandLineWorkspace.packageRoot)
        defer { nethost.stop() }

        // echo hello | nc -q1 127.0.0.1 7777
        for host in CommandLineWorkspace.loopbacks {
            let client = try TestClient(connectingTo: host, port: example.port("demo_echo"))
            try client.send("hello from \(host)\n")
            #expect(try client.read(until: "\n") == "hello from \(host)\n")
        }

        // printf 'PROXY TCP4 203.0.113.7 192.0.2.1 51234 17780\r\n' | nc -q1 127.0.0.1 17780
        let proxied = try TestClient(connectingTo: "127.0.0.1", port: example.port("proxy_client_info"))
        try proxied.send("PROXY TCP4 203.0.113.7 192.0.2.1 51234 \(example.port("proxy_client_info"))\r\n")
        let info = String(decoding: try proxied.readToEnd(), as: UTF8.self)
        #expect(info.hasPrefix("client 203.0.113.7 51234\n"), "client_info said: \(info)")
        #expect(info.contains("proxy 127.0.0.1 \(proxied.localPort)\n"), "client_info said: \(info)")

        // The other mappings: echo behind a PROXY header, and whoami.
        let proxiedEcho = try TestClient(connectingTo: "::1", port: example.port("proxy_echo"))
        try proxiedEcho.send("PROXY TCP6 2001:db8::7 2001:db8::1 40000 443\r\nthrough the proxy\n")
        #expect(try proxiedEcho.read(until: "\n") == "through the proxy\n")

        let proxiedWhoami = try TestClient(connectingTo: "127.0.0.1", port: example.port("proxy_whoami"))
        try proxiedWhoami.send("PROXY TCP4 198.51.100.9 192.0.2.1 4242 443\r\n")
        let whoami = String(decoding: try proxiedWhoami.readToEnd(), as: UTF8.self)
        #expect(whoami.contains("198.51.100.9 4242"), "whoami said: \(whoami)")

        #expect(nethost.isRunning, "\(nethost.output)")
        #expect(nethost.stop() == .exited(0), "\(nethost.output)")
    }
}

import Foundation
import ProxyProtocol
import SocketTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// The hostile-input suites: one real nethost per suite, attacked from many
// loopback source addresses (Linux routes all of 127.0.0.0/8 to lo, so a client
// binds 127.0.0.x before connecting and nethost sees that address as its peer).
//
// nethost runs `net_proxy` on one port in front of the `interop_report` Lua
// service (see InteropSupport.swift), which tells each connection what it knows
// about it (its `conn:ip()`, `conn:proxyip()`, ...), logs the same line, then
// echoes. So a hostile peer that was served would read a line, and the log would
// show the service saw it.

/// The nethost a hostile suite attacks, with what the tests need to look at it
/// from outside: its log, its counters (SIGUSR1), and a good connection to prove
/// it still serves.
final class HostileHost: Sendable {
    /// 127.0.0.1 and 127.0.0.0–127.0.0.127 may send headers; 127.0.0.128 and above may not.
    static let trustedProxies = ["127.0.0.1", "127.0.0.0/25"]

    let fixture: NetHostFixture
    /// The PROXY port (on 127.0.0.1 only).
    let port: Int
    let headerTimeout: Duration
    let maxPendingHeadersPerIP: Int

    private init(fixture: NetHostFixture, port: Int, headerTimeout: Duration, maxPendingHeadersPerIP: Int) {
        self.fixture = fixture
        self.port = port
        self.headerTimeout = headerTimeout
        self.maxPendingHeadersPerIP = maxPendingHeadersPerIP
    }

    /// The host of the suite being run (see ``HostileHostScope``).
    @TaskLocal static var current: HostileHost?

    /// The suite's host; fails the test if the suite has no ``HostileHostScope``.
    static func suiteHost(sourceLocation: SourceLocation = #_sourceLocation) throws -> HostileHost {
        try #require(current, "the suite needs the .hostileHost(...) trait", sourceLocation: sourceLocation)
    }

    /// Starts nethost with a short `proxy_header_timeout` and
    /// `max_pending_headers_per_ip`, and waits until it listens and has trapped
    /// its signals (it logs "started" after that).
    static func start(headerTimeout: Duration, maxPendingHeadersPerIP: Int) async throws -> HostileHost {
        let port = try FreePort.allocate()
        let trusted = trustedProxies.map { "\"\($0)\"" }.joined(separator: ", ")
        let seconds = Double(headerTimeout.milliseconds) / 1000
        let fixture = try await NetHostFixture.start(
            config: { paths in
                """
                plugin_paths = { "\(paths.modulesDirectory)" }
                modules_enabled = { "net_proxy", "\(InteropReport.serviceName)" }
                interfaces = { "127.0.0.1" }
                proxy_port_mappings = { [\(port)] = "\(InteropReport.serviceName)" }
                proxy_trusted_proxies = { \(trusted) }
                proxy_header_timeout = \(seconds)
                network_settings = { max_pending_headers_per_ip = \(maxPendingHeadersPerIP) }

                """
            },
            modules: [InteropReport.moduleFile: InteropReport.source],
            readiness: [.listening(host: "127.0.0.1", port: port), .logLine("started; modules loaded")]
        )
        return HostileHost(
            fixture: fixture, port: port, headerTimeout: headerTimeout, maxPendingHeadersPerIP: maxPendingHeadersPerIP)
    }

    func stop() {
        self.fixture.stop()
    }

    var log: String { self.fixture.log }

    /// A client connected to the PROXY port from `source` (a 127.0.0.x address).
    func connect(from source: String) throws -> TestClient {
        try TestClient(connectingTo: "127.0.0.1", port: self.port, from: source)
    }

    // MARK: The log

    /// Waits for a log line that holds every one of `parts`, and returns it.
    @discardableResult
    func logLine(_ parts: [String], timeout: Duration = .seconds(10)) async throws -> String {
        let found = try await poll(timeout: timeout) {
            self.log.split(separator: "\n").first { line in parts.allSatisfy { line.contains($0) } }.map(String.init)
        }
        guard let found else {
            throw FixtureError("nethost logged no line with all of \(parts) in \(timeout); its log:\n\(tail(self.log, lines: 40))")
        }
        return found
    }

    /// The connections the service saw whose socket peer was `source:port`
    /// (`conn:proxyip()` and `conn:proxyport()`): empty unless it served that client.
    func servedConnections(from source: String, port: Int) -> [[String: String]] {
        InteropReport.logged(in: self.log).filter { $0["proxyip"] == source && $0["proxyport"] == "\(port)" }
    }

    // MARK: Counters

    static let statisticsMessage = "PROXY connections by outcome"

    /// Sends nethost SIGUSR1 and returns the counters it then logs for the PROXY
    /// port: each outcome (`proxied`, `invalid`, `timeout`, ...) and each reason of
    /// the invalid headers (`invalid.badSignature`, ...), by name.
    func statistics() async throws -> [String: Int] {
        let marker = " port=\(self.port) "
        func lines() -> [Substring] {
            self.log.split(separator: "\n").filter { $0.contains(Self.statisticsMessage) && $0.contains(marker) }
        }
        let before = lines().count
        self.fixture.process.send(signal: SIGUSR1)
        let line = try await poll(timeout: .seconds(10)) { () -> Substring? in
            let now = lines()
            return now.count > before ? now.last : nil
        }
        guard let line else {
            throw FixtureError("nethost logged no statistics line after SIGUSR1; its log:\n\(tail(self.log))")
        }
        var counts: [String: Int] = [:]
        for pair in line.split(separator: " ") {
            guard let equals = pair.firstIndex(of: "="), let value = Int(pair[pair.index(after: equals)...]) else { continue }
            let key = String(pair[..<equals])
            if key != "port" { counts[key] = value }
        }
        return counts
    }

    // MARK: Liveness

    /// A trusted proxy (127.0.0.1) sends a valid header (v1 or v2) for the client
    /// `198.51.100.<n>:<40000 + n>`; the service must see exactly that client and
    /// the proxy's real address, and echo `echoBytes` bytes back unchanged.
    func expectServesAGoodConnection(
        _ n: Int, version: Int, from source: String = "127.0.0.1", echoBytes: Int = 4096,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let clientIP = "198.51.100.\(n % 256)"
        let clientPort = 40000 + n
        let client = try self.connect(from: source)
        defer { client.close() }
        if version == 1 {
            try client.send("PROXY TCP4 \(clientIP) 192.0.2.1 \(clientPort) 443\r\n")
        } else {
            try client.send(HostileBytes.v2(source: clientIP, sourcePort: clientPort))
        }
        let report = try InteropReport.read(from: client)
        #expect(report == InteropReport.proxied(
            version: version, client: clientIP, clientPort: clientPort, destination: "192.0.2.1", destinationPort: 443,
            proxy: source, proxyPort: client.localPort, serverPort: self.port),
            "the liveness check was not served as its header says", sourceLocation: sourceLocation)
        try expectEchoRoundTrip(client, count: echoBytes, seed: UInt64(n), sourceLocation: sourceLocation)
    }
}

/// Starts one ``HostileHost`` before a suite's first test and stops it after its
/// last, and makes it ``HostileHost/current`` for the tests in between.
struct HostileHostScope: SuiteTrait, TestScoping {
    let headerTimeout: Duration
    let maxPendingHeadersPerIP: Int

    func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        let host = try await HostileHost.start(headerTimeout: headerTimeout, maxPendingHeadersPerIP: maxPendingHeadersPerIP)
        defer { host.stop() }
        try await HostileHost.$current.withValue(host) {
            try await function()
        }
    }
}

extension Trait where Self == HostileHostScope {
    /// One nethost for the whole suite, with these limits.
    static func hostileHost(headerTimeout: Duration, maxPendingHeadersPerIP: Int) -> Self {
        HostileHostScope(headerTimeout: headerTimeout, maxPendingHeadersPerIP: maxPendingHeadersPerIP)
    }
}

/// Builders for the bytes the hostile tests send.
enum HostileBytes {
    /// A valid v2 PROXY header (TCP over IPv4) for `source:sourcePort` -> 192.0.2.1:443.
    static func v2(
        source: String = "203.0.113.7", sourcePort: Int = 51234, command: ProxyHeader.Command = .proxy,
        tlvs: [ProxyTLV] = [], checksum: Bool = false
    ) throws -> [UInt8] {
        guard let address = IPv4Address(source) else { throw FixtureError("not an IPv4 address: \(source)") }
        let header = ProxyHeader(
            version: .v2, command: command, transport: .stream,
            addresses: .inet(
                source: .init(address, port: UInt16(sourcePort)), destination: .init(IPv4Address(192, 0, 2, 1), port: 443)),
            tlvs: tlvs)
        return try ProxyHeaderEncoder.encode(header, addingChecksum: checksum)
    }

    /// The v2 signature, then the version/command byte, the family byte and the length.
    static func v2Prefix(_ versionCommand: UInt8, _ family: UInt8, length: Int) -> [UInt8] {
        [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
         versionCommand, family, UInt8(length >> 8), UInt8(length & 0xFF)]
    }
}

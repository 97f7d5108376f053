import Foundation
import NetHost
import NetHostTestSupport
import ProxyModule
import ProxyProtocol
import Testing

/// The end-to-end suites share this parent so that they run one at a time: each
/// starts a whole host, and on a small machine several at once would only wait
/// for each other. None of them judges time (that is on virtual time, in
/// ProxyHeaderStageTests); they wait for what the server does.
@Suite("net_proxy end to end", .serialized)
struct NetProxyEndToEnd {}

/// A NetHost on loopback running `net_proxy` in front of the Lua `report`
/// service and the Swift `origin_swift` service.
struct ProxyHost {
    let fixture: HostFixture
    /// The ports net_proxy listens on: first those of `services`, in order, then the extra ones.
    let ports: [Int]

    var port: Int { ports[0] }
    var logs: LogCapture { fixture.logs }

    static let natives: [any NativeModule.Type] = BuiltinModules.all + ProxyModules.all + [OriginProbeModule.self]

    /// A client connected to `port` (default: the first mapped port).
    func connect(port: Int? = nil, host: String = "127.0.0.1", from source: String? = nil, timeout: Duration = .seconds(5)) throws -> TestClient {
        try TestClient(connectingTo: host, port: port ?? self.port, from: source, timeout: timeout)
    }

    /// The first log line holding every one of `parts`, waiting (bounded) for it.
    func logLine(_ parts: String..., timeout: Double = 3) -> String? {
        var found: String?
        _ = fixture.eventually(timeout: timeout) {
            found = logs.all.first { line in parts.allSatisfy { line.contains($0) } }
            return found != nil
        }
        return found
    }

    /// A trusted client sends a good header on `port` and is served: the
    /// server has not been disturbed by whatever came before.
    func servesAGoodConnection(port: Int? = nil) throws -> Bool {
        let client = try connect(port: port)
        try client.send("PROXY TCP4 198.51.100.9 192.0.2.1 40000 443\r\n")
        let report = ReportService.fields(try client.readLine())
        try client.send("still there?\n")
        let echo = try client.readLine()
        return report["ip"] == "198.51.100.9" && report["port"] == "40000" && echo == "still there?"
    }
}

/// `count` ports that were free on 127.0.0.1, all different.
func distinctFreePorts(_ count: Int) throws -> [Int] {
    var ports: [Int] = []
    while ports.count < count {
        let port = try FreePort.allocate()
        if !ports.contains(port) { ports.append(port) }
    }
    return ports
}

/// Runs `body` against a NetHost whose `proxy_port_mappings` maps one fresh
/// port to each of `services`; `extraPorts` more fresh ports are reserved for
/// the options (such as `proxy_ports`), which `options` builds from all the ports.
func withProxyHost(
    services: [String] = [ReportService.name],
    extraPorts: Int = 0,
    options: ([Int]) -> [String: ConfigValue] = { _ in [:] },
    _ body: (ProxyHost) async throws -> Void
) async throws {
    let ports = try distinctFreePorts(services.count + extraPorts)
    var mappings: [ConfigKey: ConfigValue] = [:]
    for (port, service) in zip(ports, services) {
        mappings[.integer(port)] = .string(service)
    }
    var all = options(ports)
    all["modules_enabled"] = all["modules_enabled"] ?? .strings("net_proxy", ReportService.name, OriginProbeModule.name)
    all["proxy_port_mappings"] = all["proxy_port_mappings"] ?? .table(ConfigTable(map: mappings))

    let fixture = try HostFixture(modules: [ReportService.name: ReportService.source])
    do {
        try await fixture.start(options: all, natives: ProxyHost.natives)
        try await body(ProxyHost(fixture: fixture, ports: ports))
    } catch {
        await fixture.stop()
        throw error
    }
    await fixture.stop()
}

// MARK: Headers

enum Headers {
    static let v1TCP4 = "PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n"

    static func v2(
        command: ProxyHeader.Command = .proxy,
        transport: ProxyHeader.TransportProtocol = .stream,
        _ addresses: ProxyHeader.Addresses,
        tlvs: [ProxyTLV] = [],
        checksum: Bool = false
    ) throws -> [UInt8] {
        try ProxyHeaderEncoder.encode(
            ProxyHeader(version: .v2, command: command, transport: transport, addresses: addresses, tlvs: tlvs),
            addingChecksum: checksum
        )
    }

    static let inet = ProxyHeader.Addresses.inet(
        source: .init(IPv4Address(203, 0, 113, 7), port: 51234),
        destination: .init(IPv4Address(192, 0, 2, 1), port: 443)
    )

    static let inet6 = ProxyHeader.Addresses.inet6(
        source: .init(IPv6Address("2001:db8::7")!, port: 51234),
        destination: .init(IPv6Address("2001:db8::1")!, port: 443)
    )

    static func v2TCP4() throws -> [UInt8] { try v2(inet) }

    /// The v2 signature and a version/command byte, family byte and length.
    static func v2Prefix(_ versionCommand: UInt8, _ family: UInt8, length: Int) -> [UInt8] {
        [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
         versionCommand, family, UInt8(length >> 8), UInt8(length & 0xFF)]
    }
}

extension TestClient {
    /// Reads the report line the service writes at onconnect.
    func report() throws -> [String: String] {
        ReportService.fields(try readLine())
    }
}

import Foundation
import SocketTestSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// A fleet on loopback: NetHost instances, each with a whoami and an echo service
// behind net_proxy and an agent-check port, and a real HAProxy in front of them
// with health checks, agent checks and its stats socket. The README's "A fleet
// behind HAProxy" describes the same set-up.

/// One NetHost instance of a fleet: its ports stay the same across restarts.
struct FleetMember: Sendable {
    let name: String
    let whoamiPort: Int
    let echoPort: Int
    let agentPort: Int
    /// `agent_check_drain_time`: how long a graceful stop keeps the ports open answering drain.
    /// Ten of the tests' 200 ms agent checks: with three (0.6 s), a CI run with every
    /// suite on two cores once saw the ports close before HAProxy's check came.
    var drainTime: Double = 2
    var maxConnections: Int?
    var stateFile: String?

    init(name: String, drainTime: Double = 2, maxConnections: Int? = nil, stateFile: String? = nil) throws {
        self.name = name
        self.whoamiPort = try FreePort.allocate()
        self.echoPort = try FreePort.allocate()
        self.agentPort = try FreePort.allocate()
        self.drainTime = drainTime
        self.maxConnections = maxConnections
        self.stateFile = stateFile
    }

    var config: String {
        var lines = [
            #"modules_enabled = { "net_proxy", "demo_whoami", "demo_echo_swift", "agent_check" }"#,
            #"interfaces = { "127.0.0.1" }"#,
            "demo_whoami_ports = { }",
            "demo_echo_swift_ports = { }",
            #"proxy_port_mappings = { [\#(whoamiPort)] = "demo_whoami", [\#(echoPort)] = "demo_echo_swift" }"#,
            "agent_check_ports = { \(agentPort) }",
            #"agent_check_interfaces = { "127.0.0.1" }"#,
            "agent_check_drain_time = \(drainTime)",
            "shutdown_timeout = 10",
        ]
        if let maxConnections { lines.append("network_settings = { max_connections = \(maxConnections) }") }
        if let stateFile { lines.append(#"agent_check_state_file = "\#(stateFile)""#) }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Starts the instance and waits until all three of its ports listen.
    func start() async throws -> NetHostFixture {
        try await NetHostFixture.start(
            config: config,
            readiness: [whoamiPort, echoPort, agentPort].map { .listening(host: "127.0.0.1", port: $0) },
            timeout: .seconds(20)
        )
    }
}

/// HAProxy in front of a fleet: one frontend and one backend per service, every
/// member a server in each backend, with `send-proxy-v2`, the health and agent
/// checks in `serverDefaults`, and a stats socket. One log line per session:
///
///     fleet-session client=127.0.0.1:41234 backend=whoami server=n2 retries=0 state=--
///
/// at its end, or at once for a backend with `logAsap` (HAProxy's `option logasap`:
/// a held connection's server is known while it is open).
final class FleetHAProxy: Sendable {
    enum Service: String, Sendable {
        case whoami, echo
    }

    struct Backend: Sendable {
        let service: Service
        var logAsap = false
    }

    static let logFormat = #"log-format "fleet-session client=%ci:%cp backend=%b server=%s retries=%rc state=%ts""#

    let members: [FleetMember]
    let frontendPorts: [Service: Int]
    let directory: TemporaryDirectory
    let process: ManagedProcess
    let stats: HAProxyStats

    private init(members: [FleetMember], frontendPorts: [Service: Int], directory: TemporaryDirectory, process: ManagedProcess) {
        self.members = members
        self.frontendPorts = frontendPorts
        self.directory = directory
        self.process = process
        self.stats = HAProxyStats(socketPath: directory.file("stats.sock"))
    }

    static func render(
        members: [FleetMember], backends: [Backend], frontendPorts: [Service: Int], serverDefaults: [String],
        defaults: [String], statsSocket: String
    ) -> String {
        var lines = [
            "global",
            "    log stderr format raw local0 info",
            "    nbthread 1",
            "    stats socket \(statsSocket) level admin",
            "",
            "defaults",
            "    mode tcp",
            "    log global",
        ] + defaults.map { "    \($0)" }
        for backend in backends {
            let name = backend.service.rawValue
            lines += ["", "frontend \(name)", "    bind 127.0.0.1:\(frontendPorts[backend.service] ?? 0)", "    \(logFormat)"]
            if backend.logAsap { lines.append("    option logasap") }
            lines += ["    default_backend \(name)", "", "backend \(name)", "    balance roundrobin"]
            lines.append("    default-server " + serverDefaults.joined(separator: " "))
            for member in members {
                let port = backend.service == .whoami ? member.whoamiPort : member.echoPort
                lines.append("    server \(member.name) 127.0.0.1:\(port) agent-port \(member.agentPort)")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Starts HAProxy and waits until its frontends listen.
    static func start(
        members: [FleetMember], backends: [Backend], serverDefaults: [String], defaults: [String]
    ) async throws -> FleetHAProxy {
        let directory = try TemporaryDirectory(prefix: "haproxy-fleet")
        var frontendPorts: [Service: Int] = [:]
        for backend in backends { frontendPorts[backend.service] = try FreePort.allocate() }
        let config = render(
            members: members, backends: backends, frontendPorts: frontendPorts, serverDefaults: serverDefaults,
            defaults: defaults, statsSocket: directory.file("stats.sock")
        )
        let path = try directory.write(config, to: "haproxy.cfg")
        let process = try await launchServer(
            program: "haproxy", installHint: "apt-get install haproxy", arguments: ["-db", "-f", path],
            directory: directory, listeners: frontendPorts.values.map { ("127.0.0.1", $0) }, timeout: .seconds(10)
        )
        return FleetHAProxy(members: members, frontendPorts: frontendPorts, directory: directory, process: process)
    }

    func port(_ service: Service) -> Int { frontendPorts[service] ?? 0 }

    var log: String { process.output }

    /// The session lines logged so far, by the client's port.
    var sessions: [Int: [String: String]] {
        var sessions: [Int: [String: String]] = [:]
        for line in log.split(separator: "\n") where line.hasPrefix("fleet-session ") {
            var fields: [String: String] = [:]
            for pair in line.dropFirst("fleet-session ".count).split(separator: " ") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                if parts.count == 2 { fields[String(parts[0])] = String(parts[1]) }
            }
            if let client = fields["client"], let port = client.split(separator: ":").last.flatMap({ Int($0) }) {
                sessions[port] = fields
            }
        }
        return sessions
    }

    @discardableResult
    func stop() -> ManagedProcess.Termination { process.stop() }
}

/// An independent client making whoami connections through HAProxy, one after
/// another on a thread of its own (`PacedLoop`), from start until `stop()`: each must
/// read exactly `127.0.0.1 <its own port>\n` (the address HAProxy's PROXY header gave
/// NetHost) and then the close. Anything else is a failure, kept with the client's
/// port so the test can ask HAProxy's log where that connection went.
final class SteadyTraffic: Sendable {
    struct Failure: Sendable, CustomStringConvertible {
        let localPort: Int?
        let problem: String
        var description: String { "client port \(localPort.map(String.init) ?? "none"): \(problem)" }
    }

    private struct State {
        var served = 0
        var failures: [Failure] = []
    }

    private let state = Locked(State())
    private let loop: PacedLoop

    /// Starts at once; `pause` between two connections.
    init(port: Int, pause: Duration) {
        let state = self.state
        loop = PacedLoop(name: "steady traffic", pause: pause) { _ in
            var localPort: Int?
            do {
                let client = try TestClient(connectingTo: "127.0.0.1", port: port, timeout: .seconds(5))
                localPort = client.localPort
                let reply = String(decoding: try client.readToEnd(), as: UTF8.self)
                client.close()
                if reply == "127.0.0.1 \(client.localPort)\n" {
                    state.withLock { $0.served += 1 }
                } else {
                    let failure = Failure(localPort: localPort, problem: "read \(reply.debugDescription)")
                    state.withLock { $0.failures.append(failure) }
                }
            } catch {
                let failure = Failure(localPort: localPort, problem: "\(error)")
                state.withLock { $0.failures.append(failure) }
            }
        }
    }

    var served: Int { state.withLock { $0.served } }
    var failures: [Failure] { state.withLock { $0.failures } }

    /// Stops after the connection under way, and waits for it.
    func stop() async throws {
        guard await loop.stop() else { throw FixtureError("the steady traffic's thread did not stop in 15 s") }
    }
}

extension TestClient {
    /// One echo round trip; false if the connection has gone (closed or reset).
    func echoes(_ text: String) -> Bool {
        guard (try? send(text + "\n")) != nil else { return false }
        return (try? readLine(timeout: .seconds(5))) == text
    }
}

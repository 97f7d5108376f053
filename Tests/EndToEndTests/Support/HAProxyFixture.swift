import SocketTestSupport

/// A real HAProxy (`haproxy -db -f <tmp>/haproxy.cfg`) in TCP mode, in front of a
/// backend server, sending it PROXY headers.
///
/// Runs in the foreground (`-db`: no daemon, no master-worker), as whoever runs the
/// tests: no `user`, `chroot`, `pidfile` or stats socket. Its log (`log stderr`,
/// `option tcplog`: one line per connection, plus server state changes) is
/// captured in ``log``.
///
/// The knobs, all in ``Configuration``:
///
/// | knob | haproxy.cfg |
/// | --- | --- |
/// | `frontendHosts`, `frontendPort` | `bind <host>:<port>` (one per host; the port is allocated when nil) |
/// | `backendHost`, `backendPort` | `server backend <host>:<port>` |
/// | `sendProxy` | `send-proxy`, `send-proxy-v2`, `send-proxy-v2-ssl`, `send-proxy-v2-ssl-cn` or nothing |
/// | `proxyV2Options` | `proxy-v2-options authority,crc32c,unique-id` (`ssl`, `cert-cn`, ...) |
/// | `uniqueIDFormat` | `unique-id-format <format>` in the frontend, written as is (escape spaces as `\ `) |
/// | `healthCheck` | `check [check-send-proxy] inter <ms>ms` (+ `extraOptions` such as `rise 1`) |
/// | `extraServerOptions` | appended to the `server` line |
/// | `extraFrontendLines`, `extraBackendLines` | added to those sections |
/// | `connectTimeout`, `clientTimeout`, `serverTimeout` | `timeout connect/client/server` |
///
/// Stop it with ``stop()`` (SIGTERM: HAProxy's hard stop), or let it go out of scope.
final class HAProxyFixture: Sendable {
    struct Configuration: Sendable {
        enum SendProxy: String, Sendable {
            case none = ""
            case v1 = "send-proxy"
            case v2 = "send-proxy-v2"
            case v2SSL = "send-proxy-v2-ssl"
            case v2SSLCN = "send-proxy-v2-ssl-cn"
        }

        struct HealthCheck: Sendable {
            /// `check-send-proxy`: send a PROXY header on checks too. (HAProxy sends one
            /// on checks anyway when the server line sends them and the check has no
            /// `port` or `addr` of its own.)
            var sendProxy = true
            /// `inter`: time between two checks.
            var interval: Duration = .milliseconds(500)
            /// More check options for the server line, e.g. `["rise 1", "fall 1"]`.
            var extraOptions: [String] = []

            init(sendProxy: Bool = true, interval: Duration = .milliseconds(500), extraOptions: [String] = []) {
                self.sendProxy = sendProxy
                self.interval = interval
                self.extraOptions = extraOptions
            }
        }

        var frontendHosts = ["127.0.0.1"]
        /// The frontend port; nil allocates a free one (see ``HAProxyFixture/frontendPort``).
        var frontendPort: Int?
        var backendHost = "127.0.0.1"
        var backendPort: Int
        var sendProxy: SendProxy = .v2
        var proxyV2Options: [String] = []
        var uniqueIDFormat: String?
        var healthCheck: HealthCheck?
        var extraServerOptions: [String] = []
        var extraFrontendLines: [String] = []
        var extraBackendLines: [String] = []
        var connectTimeout: Duration = .seconds(5)
        var clientTimeout: Duration = .seconds(60)
        var serverTimeout: Duration = .seconds(60)

        init(
            backendPort: Int,
            sendProxy: SendProxy = .v2,
            frontendHosts: [String] = ["127.0.0.1"],
            frontendPort: Int? = nil,
            backendHost: String = "127.0.0.1",
            proxyV2Options: [String] = [],
            uniqueIDFormat: String? = nil,
            healthCheck: HealthCheck? = nil,
            extraServerOptions: [String] = []
        ) {
            self.backendPort = backendPort
            self.sendProxy = sendProxy
            self.frontendHosts = frontendHosts
            self.frontendPort = frontendPort
            self.backendHost = backendHost
            self.proxyV2Options = proxyV2Options
            self.uniqueIDFormat = uniqueIDFormat
            self.healthCheck = healthCheck
            self.extraServerOptions = extraServerOptions
        }

        /// The server line's options, in HAProxy's words.
        var serverOptions: [String] {
            var options: [String] = []
            if self.sendProxy != .none { options.append(self.sendProxy.rawValue) }
            if !self.proxyV2Options.isEmpty {
                options.append("proxy-v2-options \(self.proxyV2Options.joined(separator: ","))")
            }
            if let check = self.healthCheck {
                options.append("check")
                if check.sendProxy { options.append("check-send-proxy") }
                options.append("inter \(check.interval.milliseconds)ms")
                options += check.extraOptions
            }
            return options + self.extraServerOptions
        }

        /// The whole haproxy.cfg for a frontend on `frontendPort`.
        func render(frontendPort: Int) -> String {
            var lines = [
                "global",
                "    log stderr format raw local0 info",
                "    nbthread 1",
                "",
                "defaults",
                "    mode tcp",
                "    log global",
                "    option tcplog",
                "    timeout connect \(self.connectTimeout.milliseconds)ms",
                "    timeout client \(self.clientTimeout.milliseconds)ms",
                "    timeout server \(self.serverTimeout.milliseconds)ms",
                "",
                "frontend nethost_test_frontend",
            ]
            lines += self.frontendHosts.map { "    bind \(hostPort($0, frontendPort))" }
            if let format = self.uniqueIDFormat { lines.append("    unique-id-format \(format)") }
            lines += self.extraFrontendLines.map { "    \($0)" }
            lines += [
                "    default_backend nethost_test_backend",
                "",
                "backend nethost_test_backend",
            ]
            lines += self.extraBackendLines.map { "    \($0)" }
            lines.append(
                (["    server backend \(hostPort(self.backendHost, self.backendPort))"] + self.serverOptions)
                    .joined(separator: " "))
            return lines.joined(separator: "\n") + "\n"
        }
    }

    let configuration: Configuration
    /// Where clients connect: `frontendHosts` on this port.
    let frontendPort: Int
    let directory: TemporaryDirectory
    let configPath: String
    let process: ManagedProcess

    private init(
        configuration: Configuration,
        frontendPort: Int,
        directory: TemporaryDirectory,
        configPath: String,
        process: ManagedProcess
    ) {
        self.configuration = configuration
        self.frontendPort = frontendPort
        self.directory = directory
        self.configPath = configPath
        self.process = process
    }

    /// Writes the config, starts HAProxy and waits until every frontend address listens.
    /// Throws (the test fails) if HAProxy is not installed, exits, or never listens.
    static func start(_ configuration: Configuration, timeout: Duration = .seconds(10)) async throws -> HAProxyFixture {
        let frontendPort = try configuration.frontendPort ?? FreePort.allocate()
        let directory = try TemporaryDirectory(prefix: "haproxy")
        let configPath = try directory.write(configuration.render(frontendPort: frontendPort), to: "haproxy.cfg")
        let process = try await launchServer(
            program: "haproxy",
            installHint: "apt-get install haproxy",
            arguments: ["-db", "-f", configPath],
            directory: directory,
            listeners: configuration.frontendHosts.map { ($0, frontendPort) },
            timeout: timeout
        )
        return HAProxyFixture(
            configuration: configuration,
            frontendPort: frontendPort,
            directory: directory,
            configPath: configPath,
            process: process
        )
    }

    /// HAProxy's output so far: connection log lines, warnings, alerts.
    var log: String { self.process.output }

    /// Stops HAProxy (SIGTERM, then SIGKILL) and reaps it.
    @discardableResult
    func stop() -> ManagedProcess.Termination {
        self.process.stop()
    }
}

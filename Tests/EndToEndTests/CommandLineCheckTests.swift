import Foundation
import SocketTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

// `nethost check [--config FILE]` loads the config and the modules without opening a
// port, prints every problem (and the options NetHost accepts but does not use), and
// exits 0 only if there is none (README, "The two commands").

@Suite("CommandLine: nethost check")
struct CommandLineCheckTests {
    /// Prosody options NetHost accepts without using them; an existing prosody.cfg.lua has them.
    static let prosodyOnlyOptions = """
        -- Left over from a Prosody config: accepted, listed, not a problem.
        daemonize = false
        data_path = "/var/lib/prosody"
        c2s_ports = { 5222 }

        """

    @Test
    func theExampleConfigHasNoProblems() async throws {
        let example = try CommandLineExampleConfig(prepending: Self.prosodyOnlyOptions)
        let workspace = try CommandLineWorkspace(prefix: "check-ok")
        let config = try workspace.write(example.text, to: "prosody.cfg.lua")
        let watched = (example.allPorts + [5222]).flatMap { CommandLineWorkspace.onLoopbacks($0) }

        let result = try await workspace.run(["check", "--config", config], watching: watched)

        #expect(result.termination == .exited(0), "\(result.output)")
        let lines = result.standardOutput.split(separator: "\n").map(String.init)
        #expect(lines.contains("no problems found"), "\(result.output)")
        #expect(lines.contains("accepted, not used by NetHost: c2s_ports, daemonize, data_path"), "\(result.output)")
        let modules = lines.first { $0.hasPrefix("modules loaded:") } ?? ""
        for module in ["net_proxy", "demo_echo", "demo_client_info", "demo_whoami"] {
            #expect(modules.contains(module), "\(result.output)")
        }
        #expect(result.errorLines.isEmpty, "a config without problems made check complain: \(result.output)")
        #expect(result.listenedOn.isEmpty, "check opened \(result.listenedOn)")
    }

    @Test("a module in plugin_paths named like a built-in is loaded in its place: a note, not a problem")
    func aUserModuleInPlaceOfABuiltInIsNoted() async throws {
        let workspace = try CommandLineWorkspace(prefix: "check-shadow")
        let plugin = try workspace.write(#"module:log("info", "the user's whoami")"#, to: "my_plugins/mod_demo_whoami.lua")
        let config = try workspace.write(
            """
            plugin_paths = { "my_plugins" }
            modules_enabled = { "demo_whoami" }
            """,
            to: "prosody.cfg.lua"
        )
        let result = try await workspace.run(["check", "--config", config], watching: [])

        #expect(result.termination == .exited(0), "\(result.output)")
        let lines = result.standardOutput.split(separator: "\n").map(String.init)
        #expect(lines.contains(
            "note: module 'demo_whoami' is loaded from \(plugin) (plugin_paths), in place of NetHost's built-in native module"
        ), "\(result.output)")
        #expect(lines.contains("no problems found"), "\(result.output)")
    }

    @Test(
        "Debian's default prosody.cfg.lua: no problems; its XMPP modules and its reopened VirtualHost are notes",
        .enabled(if: FileManager.default.isReadableFile(atPath: "/etc/prosody/prosody.cfg.lua"), "needs Debian's prosody package")
    )
    func debiansDefaultProsodyConfig() async throws {
        let workspace = try CommandLineWorkspace(prefix: "check-debian")
        let result = try await workspace.run(["check", "--config", "/etc/prosody/prosody.cfg.lua"], watching: [])

        #expect(result.termination == .exited(0), "\(result.output)")
        let lines = result.standardOutput.split(separator: "\n").map(String.init)
        #expect(lines.contains("no problems found"), "\(result.output)")
        let xmpp = lines.first { $0.hasPrefix("note: Prosody's XMPP modules, which NetHost does not host, are not loaded: ") }
        for module in ["roster", "saslauth", "tls", "disco", "posix"] {
            #expect(xmpp?.contains(module) == true, "\(result.output)")
        }
        #expect(lines.contains { $0.hasPrefix("note: ") && $0.contains("VirtualHost \"localhost\" is opened again") }, "\(result.output)")
        #expect(result.errorLines.isEmpty, "\(result.output)")
    }

    @Test("safety audit: a PROXY port on every interface trusting everyone is an error; public trusted networks and unreachable services are warnings; --format json says the same")
    func safetyAudit() async throws {
        let workspace = try CommandLineWorkspace(prefix: "check-audit")
        let proxyPort = try FreePort.allocate()
        let exposed = try workspace.write(
            """
            modules_enabled = { "net_proxy", "demo_whoami", "demo_echo" }
            proxy_port_mappings = { [\(proxyPort)] = "demo_whoami" }
            proxy_trusted_proxies = {}
            demo_echo_ports = {}
            """,
            to: "exposed.cfg.lua"
        )
        let result = try await workspace.run(["check", "--config", exposed], watching: CommandLineWorkspace.onLoopbacks(proxyPort))
        #expect(result.termination == .exited(1), "\(result.output)")
        #expect(result.standardOutput.contains(
            "  - proxy_trusted_proxies = {} trusts every sender, and PROXY ports listen beyond loopback (every interface port \(proxyPort), :: port \(proxyPort))"
        ), "\(result.output)")
        #expect(result.standardOutput.contains("warning: service 'demo_echo' (module demo_echo) listens on no port"), "\(result.output)")

        let json = try await workspace.run(["check", "--config", exposed, "--format", "json"], watching: [])
        #expect(json.termination == .exited(1))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.standardOutput.utf8)) as? [String: Any], "\(json.output)")
        #expect(object["ok"] as? Bool == false)
        #expect((object["problems"] as? [String])?.contains { $0.hasPrefix("proxy_trusted_proxies = {} trusts every sender") } == true)
        #expect((object["warnings"] as? [String])?.count == 1)

        let publicTrust = try workspace.write(
            """
            modules_enabled = { "net_proxy", "demo_whoami" }
            proxy_port_mappings = { [\(proxyPort)] = "demo_whoami" }
            proxy_trusted_proxies = { "127.0.0.1", "198.51.100.0/24" }
            interfaces = { "127.0.0.1" }
            """,
            to: "public.cfg.lua"
        )
        let warned = try await workspace.run(["check", "--config", publicTrust], watching: CommandLineWorkspace.onLoopbacks(proxyPort))
        #expect(warned.termination == .exited(0), "\(warned.output)")
        #expect(warned.standardOutput.contains("warning: proxy_trusted_proxies includes public addresses (198.51.100.0/24)"), "\(warned.output)")
    }

    @Test("a certificate that does not load is a problem in the list; the options are still reported")
    func aBrokenCertificateIsReportedWithTheOptions() async throws {
        let workspace = try CommandLineWorkspace(prefix: "check-cert")
        let proxyPort = try FreePort.allocate()
        let config = try workspace.write(
            """
            modules_enabled = { "net_proxy", "demo_whoami" }
            proxy_port_mappings = { [\(proxyPort)] = "demo_whoami" }
            interfaces = { "127.0.0.1" }
            ssl = { certificate = "missing.crt", key = "missing.key" }
            proxy_trusted_proxy = { "127.0.0.1" }
            """,
            to: "prosody.cfg.lua"
        )
        let result = try await workspace.run(["check", "--config", config], watching: CommandLineWorkspace.onLoopbacks(proxyPort))

        #expect(result.termination == .exited(1), "\(result.output)")
        let lines = result.standardOutput.split(separator: "\n").map(String.init)
        #expect(lines.contains { $0.contains("certificate file") && $0.contains("missing.crt does not exist") }, "\(result.output)")
        #expect(lines.contains("unknown options (typo?): proxy_trusted_proxy (did you mean proxy_trusted_proxies?)"), "\(result.output)")
        #expect(lines.contains { $0.hasPrefix("options used:") && $0.contains("ssl") }, "\(result.output)")
        #expect(result.listenedOn.isEmpty, "check opened \(result.listenedOn)")
    }

    @Test("a service behind net_proxy that also listens on its own default port is reported")
    func aProxyBypassIsReported() async throws {
        let workspace = try CommandLineWorkspace(prefix: "check-bypass")
        let proxyPort = try FreePort.allocate()
        let config = try workspace.write(
            """
            modules_enabled = { "net_proxy", "demo_echo" }
            proxy_port_mappings = { [\(proxyPort)] = "demo_echo" }
            interfaces = { "127.0.0.1" }
            """,
            to: "prosody.cfg.lua"
        )
        let result = try await workspace.run(["check", "--config", config], watching: CommandLineWorkspace.onLoopbacks(proxyPort))

        #expect(result.termination == .exited(1), "\(result.output)")
        #expect(result.standardOutput.contains(
            "service 'demo_echo' is reached through the PROXY port \(proxyPort), and also listens on its own default port 7777"
        ), "\(result.output)")
        #expect(result.standardOutput.contains("set demo_echo_ports = {} to serve it only through the proxy"), "\(result.output)")
    }

    @Test
    func everyProblemIsPrintedAndTheStatusIsNonZero() async throws {
        let workspace = try CommandLineWorkspace(prefix: "check-bad")
        let echoPort = try FreePort.allocate()
        let proxyPort = try FreePort.allocate()
        let hostPort = try FreePort.allocate()
        let config = try workspace.write(
            """
            modules_enabled = { "net_proxy", "demo_echo", "no_such_module" }
            daemonize = true
            data_path = "/var/lib/prosody"
            c2s_ports = { 5222 }
            demo_echo_ports = { \(echoPort) }
            proxy_port_mappings = { [\(proxyPort)] = "nobody_provides_this" }
            interfaces = { "127.0.0.1" }
            interfaces = { "127.0.0.1", "::1" }
            VirtualHost "example.com"
            demo_echo_ports = { \(hostPort) }

            """,
            to: "prosody.cfg.lua")
        let watched = [echoPort, proxyPort, hostPort, 5222].flatMap { CommandLineWorkspace.onLoopbacks($0) }

        let result = try await workspace.run(["check", "--config", config], watching: watched)

        guard case .exited(let status) = result.termination else {
            Issue.record("check did not exit normally: \(result.output)")
            return
        }
        #expect(status != 0, "\(result.output)")
        let lines = result.standardOutput.split(separator: "\n").map(String.init)
        #expect(!lines.contains("no problems found"), "\(result.output)")
        #expect(lines.contains("accepted, not used by NetHost: c2s_ports, daemonize, data_path"), "\(result.output)")

        let problems = lines.filter { $0.hasPrefix("  - ") }
        let expected: [(what: String, parts: [String])] = [
            ("the missing module", ["no_such_module"]),
            ("the mapping to a service nobody provides", ["\(proxyPort)", "nobody_provides_this"]),
            ("the option set twice", ["\(config):8:", "interfaces", "twice"]),
            ("the *_ports under a VirtualHost", ["\(config):10:", "demo_echo_ports", "example.com"]),
        ]
        for problem in expected {
            let matching = problems.filter { line in problem.parts.allSatisfy { line.contains($0) } }
            #expect(matching.count == 1, "\(problem.what): expected one problem line with \(problem.parts): \(result.output)")
        }
        #expect(problems.count == expected.count, "\(result.output)")
        #expect(lines.contains("\(expected.count) problems:"), "\(result.output)")
        #expect(result.listenedOn.isEmpty, "check opened \(result.listenedOn)")
    }

    /// What `run` refuses or cannot serve at start, `check` reports: each config
    /// here is one problem, and the status is non-zero.
    @Test(arguments: [
        ("a TLS service without a certificate", """
            plugin_paths = { "plugins" }
            modules_enabled = { "secure" }
            secure_ports = { PORT }
            """, ["service 'secure' uses TLS", "no certificate"]),
        ("a PROXY port mapped to a TLS service without a certificate", """
            plugin_paths = { "plugins" }
            modules_enabled = { "net_proxy", "secure" }
            secure_ports = { }
            proxy_port_mappings = { [PORT] = "secure" }
            """, ["port PORT hands its connections to service 'secure'", "no certificate"]),
        ("a log file in a folder that does not exist", """
            modules_enabled = { "demo_echo" }
            demo_echo_ports = { PORT }
            log = "/nonexistent/folder/nethost.log"
            """, ["log:", "/nonexistent/folder/nethost.log"]),
    ])
    func checkFindsWhatRunWouldRefuse(what: String, config: String, parts: [String]) async throws {
        let workspace = try CommandLineWorkspace(prefix: "check-run")
        let port = try FreePort.allocate()
        try workspace.write(#"module:provides("net", { name = "secure", encryption = "ssl", listener = {} })"#,
                            to: "plugins/mod_secure.lua")
        let path = try workspace.write(
            "interfaces = { \"127.0.0.1\" }\n" + config.replacingOccurrences(of: "PORT", with: "\(port)") + "\n",
            to: "prosody.cfg.lua")

        let result = try await workspace.run(["check", "--config", path])

        #expect(result.termination != .exited(0), "\(what): \(result.output)")
        let problems = result.standardOutput.split(separator: "\n").filter { $0.hasPrefix("  - ") }
        let expected = parts.map { $0.replacingOccurrences(of: "PORT", with: "\(port)") }
        #expect(problems.count == 1, "\(what): \(result.output)")
        #expect(problems.contains { line in expected.allSatisfy { line.contains($0) } }, "\(what): \(result.output)")
    }

    /// Host sections load their modules as Prosody does: a VirtualHost's own
    /// modules_enabled on that host, a Component's module for the component. An
    /// external component (no module) is the one problem: NetHost cannot serve it.
    @Test
    func hostSectionsLoadTheirModules() async throws {
        let workspace = try CommandLineWorkspace(prefix: "check-hosts")
        let port = try FreePort.allocate()
        try workspace.write(#"module:provides("net", { name = "gateway", listener = {} })"#, to: "plugins/mod_gateway.lua")
        try workspace.write(#"module:log("info", "greeter on %s", module:get_host())"#, to: "plugins/mod_greeter.lua")
        let config = try workspace.write(
            """
            plugin_paths = { "plugins" }
            interfaces = { "127.0.0.1" }
            gateway_ports = { \(port) }
            VirtualHost "example.com"
                modules_enabled = { "greeter" }
            Component "gw.example.com" "gateway"
            Component "external.example.com"

            """,
            to: "prosody.cfg.lua")

        let result = try await workspace.run(["check", "--config", config], watching: CommandLineWorkspace.onLoopbacks(port))

        let lines = result.standardOutput.split(separator: "\n").map(String.init)
        #expect(lines.contains("modules loaded: none"), "\(result.output)")
        #expect(lines.contains("modules loaded on example.com: greeter"), "\(result.output)")
        #expect(lines.contains("modules loaded on gw.example.com: gateway"), "\(result.output)")
        #expect(lines.contains("service gateway (module gateway on gw.example.com): 127.0.0.1:\(port)"), "\(result.output)")
        let problems = lines.filter { $0.hasPrefix("  - ") }
        #expect(problems.count == 1, "\(result.output)")
        #expect(problems.first?.contains(#"Component "external.example.com" has no module"#) == true, "\(result.output)")
        #expect(result.listenedOn.isEmpty, "check opened \(result.listenedOn)")
    }

    /// A missing config file is one message and a non-zero status, for both commands.
    @Test(arguments: [["check"], []])
    func aMissingConfigFileIsNamed(_ command: [String]) async throws {
        let workspace = try CommandLineWorkspace(prefix: "check-missing")
        let result = try await workspace.run(command + ["--config", workspace.path("nowhere.cfg.lua")])
        guard case .exited(let status) = result.termination else {
            Issue.record("nethost did not exit normally: \(result.output)")
            return
        }
        #expect(status != 0, "\(result.output)")
        #expect(result.errorLines.count == 1, "\(result.output)")
        #expect(result.errorLines.first?.contains(workspace.path("nowhere.cfg.lua")) == true, "\(result.output)")
    }
}

/// A module's finalizer (`__gc`) that calls the host runs when `check` or `run`
/// stops, and neither aborts: systemd and CI scripts read the exit status.
@Suite("CommandLine: modules with finalizers")
struct CommandLineFinalizerTests {
    static let module = """
        keep = setmetatable({}, { __gc = function () module:log("warn", "finalizer of mod_final ran") end })
        """

    @Test
    func checkExitsZeroAndTheFinalizerRuns() async throws {
        let workspace = try CommandLineWorkspace(prefix: "check-gc")
        _ = try workspace.write(Self.module, to: "plugins/mod_final.lua")
        let config = try workspace.write(
            """
            plugin_paths = { "plugins" }
            modules_enabled = { "final" }

            """,
            to: "prosody.cfg.lua")

        let result = try await workspace.run(["check", "--config", config])

        #expect(result.termination == .exited(0), "\(result.output)")
        #expect(result.standardOutput.contains("no problems found"), "\(result.output)")
        #expect(result.output.contains("finalizer of mod_final ran"), "\(result.output)")
    }

    @Test
    func sigtermExitsZeroAndTheFinalizerRuns() async throws {
        let workspace = try CommandLineWorkspace(prefix: "run-gc")
        let port = try FreePort.allocate()
        _ = try workspace.write(Self.module, to: "plugins/mod_final.lua")
        let config = try workspace.write(
            """
            plugin_paths = { "plugins" }
            modules_enabled = { "final", "demo_echo" }
            interfaces = { "127.0.0.1", "::1" }
            demo_echo_ports = { \(port) }

            """,
            to: "prosody.cfg.lua")
        let nethost = try await workspace.startListening(["--config", config], on: CommandLineWorkspace.onLoopbacks(port))
        defer { nethost.stop() }

        nethost.send(signal: SIGTERM)
        let ended = try await nethost.waitForExit(timeout: .seconds(15))

        #expect(ended == .exited(0), "\(nethost.output)")
        #expect(nethost.output.contains("finalizer of mod_final ran"), "\(nethost.output)")
    }
}

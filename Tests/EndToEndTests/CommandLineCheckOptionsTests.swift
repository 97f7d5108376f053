import Foundation
import SocketTestSupport
import Testing

// `nethost check` sorts the config's options with the option registry: used (declared
// as read by NetHost or a native module, or asked for by a Lua module while it
// loaded), accepted from Prosody without use, or unknown with a "did you mean";
// `nethost check --options` lists every option NetHost knows.

@Suite("CommandLine: nethost check and options")
struct CommandLineCheckOptionsTests {
    /// Before the registry, check said "unknown options (typo?): demo_chat_max_line_length,
    /// lua_instruction_budget, lua_memory_limit, proxy_max_header_size, proxy_trusted_proxy",
    /// and pidfile was read but listed by no one.
    @Test
    func optionsAreSortedByWhatReadsThem() async throws {
        let workspace = try CommandLineWorkspace(prefix: "check-options")
        let echoPort = try FreePort.allocate()
        let proxyPort = try FreePort.allocate()
        let chatPort = try FreePort.allocate()
        let config = try workspace.write(
            """
            modules_enabled = { "net_proxy", "demo_echo", "demo_chat" }
            interfaces = { "127.0.0.1" }
            demo_echo_ports = { \(echoPort) }
            demo_chat_ports = { \(chatPort) }
            proxy_port_mappings = { [\(proxyPort)] = "demo_echo" }
            proxy_max_header_size = 1024
            proxy_trusted_proxy = { "10.0.0.0/8" }
            lua_memory_limit = 64 * 1024 * 1024
            ssl = { protocol = "tlsv1_2+" }
            local_interfaces = { "127.0.0.1" }
            pidfile = "nethost.pid"
            -- Read by the shipped mod_demo_chat with module:get_option_integer while it loads.
            demo_chat_max_line_length = 512
            daemonize = false

            """,
            to: "prosody.cfg.lua")
        let watched = [echoPort, proxyPort, chatPort].flatMap { CommandLineWorkspace.onLoopbacks($0) }

        let result = try await workspace.run(["check", "--config", config], watching: watched)

        #expect(result.termination == .exited(0), "\(result.output)")
        let lines = result.standardOutput.split(separator: "\n").map(String.init)
        #expect(lines.contains(
            "options used: demo_chat_max_line_length, demo_chat_ports, demo_echo_ports, interfaces, local_interfaces, lua_memory_limit, "
                + "modules_enabled, pidfile, proxy_max_header_size, proxy_port_mappings, ssl"
        ), "\(result.output)")
        #expect(lines.contains("accepted, not used by NetHost: daemonize"), "\(result.output)")
        #expect(lines.contains("unknown options (typo?): proxy_trusted_proxy (did you mean proxy_trusted_proxies?)"), "\(result.output)")
        #expect(lines.contains("no problems found"), "\(result.output)")
        #expect(result.listenedOn.isEmpty, "check opened \(result.listenedOn)")
    }

    /// pidfile is the nethost command's own option; like every global one, it does
    /// nothing under a host, and check says so.
    @Test
    func pidfileUnderAHostIsAProblem() async throws {
        let workspace = try CommandLineWorkspace(prefix: "check-pidfile")
        let config = try workspace.write("VirtualHost \"example.com\"\n    pidfile = \"x.pid\"\n", to: "prosody.cfg.lua")

        let result = try await workspace.run(["check", "--config", config])

        #expect(result.termination != .exited(0), "\(result.output)")
        let problems = result.standardOutput.split(separator: "\n").filter { $0.hasPrefix("  - ") }
        #expect(problems == [
            "  - \(config):2: option 'pidfile' only works in the global section and has no effect under VirtualHost \"example.com\"; move it above the first VirtualHost or Component",
        ], "\(result.output)")
    }

    /// Issue 14: Prosody's ssl_handshake_timeout (a network_settings key in Prosody's
    /// server_epoll; NetHost also takes it as a global option) was "unknown", and the
    /// handshake rate limit did not exist.
    @Test
    func tlsHandshakeOptionsAreUsed() async throws {
        let workspace = try CommandLineWorkspace(prefix: "check-tls-handshake")
        let echoPort = try FreePort.allocate()
        let config = try workspace.write(
            """
            modules_enabled = { "demo_echo" }
            interfaces = { "127.0.0.1" }
            demo_echo_ports = { \(echoPort) }
            ssl_handshake_timeout = 10
            ssl_max_handshakes_per_second = 500
            network_settings = { ssl_handshake_timeout = 10, handshake_timeout = 10 }

            """,
            to: "prosody.cfg.lua")

        let result = try await workspace.run(["check", "--config", config], watching: CommandLineWorkspace.onLoopbacks(echoPort))

        #expect(result.termination == .exited(0), "\(result.output)")
        let lines = result.standardOutput.split(separator: "\n").map(String.init)
        #expect(lines.contains(
            "options used: demo_echo_ports, interfaces, modules_enabled, network_settings, ssl_handshake_timeout, ssl_max_handshakes_per_second"
        ), "\(result.output)")
        #expect(!lines.contains { $0.hasPrefix("unknown options") }, "\(result.output)")
        #expect(lines.contains("no problems found"), "\(result.output)")
    }

    @Test
    func theListingNamesEveryKindOfOption() async throws {
        let workspace = try CommandLineWorkspace(prefix: "check-listing")

        // No config is read: there is none in this folder.
        let result = try await workspace.run(["check", "--options"], workingDirectory: workspace.path("."))

        #expect(result.termination == .exited(0), "\(result.output)")
        let lines = result.standardOutput.split(separator: "\n").map(String.init)
        for expected in [
            "  proxy_max_header_size: integer; default 4096; global; reload: new connections only",
            "  lua_memory_limit: integer; global; reload: needs a restart (set on the Lua state when it is made, at start)",
            "  local_interfaces: list of strings; default { \"127.0.0.1\", \"::1\" }; global; reload: applied",
            "  pidfile: string; global; reload: needs a restart (the pidfile is written and locked at start)",
            "  <service>_ports: list of ports; default the service's default_port(s); global; reload: applied",
        ] {
            #expect(lines.contains(expected), "\(expected): \(result.output)")
        }
        #expect(lines.contains("  daemonize, run_as_root: any value; global; reload: not used"), "\(result.output)")
        // Every option, the command's and net_proxy's too, says what a reload does with it.
        #expect(!result.standardOutput.contains("reload: not stated"), "\(result.output)")
        for title in ["modules", "ports", "network", "TLS", "logging", "net_proxy", "nethost", "accepted from Prosody, not used by NetHost"] {
            #expect(lines.contains(title), "\(title): \(result.output)")
        }
        #expect(result.errorLines.isEmpty, "\(result.output)")
    }
}

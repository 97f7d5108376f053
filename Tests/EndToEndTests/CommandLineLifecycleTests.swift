import Foundation
import SocketTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Stopping, the pidfile, logging and the version (README, "The two commands" and
// "Configuration").

@Suite("CommandLine: stopping and the pidfile")
struct CommandLineStopTests {
    /// SIGTERM or SIGINT: listeners close, open connections are closed (at once,
    /// with `shutdown_timeout = 0`) and their services get `ondisconnect`, the
    /// pidfile goes, and the status is 0.
    @Test(arguments: [SIGTERM, SIGINT])
    func aSignalStopsGracefully(_ signal: Int32) async throws {
        let workspace = try CommandLineWorkspace(prefix: "stop")
        let port = try FreePort.allocate()
        let marker = workspace.path("ondisconnect.txt")
        try workspace.write(
            """
            plugin_paths = { "plugins" }
            modules_enabled = { "marker" }
            interfaces = { "127.0.0.1", "::1" }
            marker_ports = { \(port) }
            marker_file = "\(marker)"
            pidfile = "nethost.pid"
            shutdown_timeout = 0

            """,
            to: "etc/prosody.cfg.lua")
        try workspace.write(
            #"""
            local path = module:get_option_string("marker_file")
            local listener = {}
            function listener.onconnect(conn) conn:write("ready\n") end
            function listener.onincoming(conn, data) conn:write(data) end
            function listener.ondisconnect(conn, err)
            	local file = assert(io.open(path, "a"))
            	file:write("ondisconnect ", conn:ip(), " ", tostring(conn:port()), "\n")
            	file:close()
            end
            module:provides("net", { name = "marker", listener = listener })
            """#,
            to: "etc/plugins/mod_marker.lua")
        let nethost = try await workspace.startListening(
            ["--config", "etc/prosody.cfg.lua"], on: CommandLineWorkspace.onLoopbacks(port))
        defer { nethost.stop() }

        // The pidfile is beside the config and holds the PID.
        let pid = workspace.contents(of: "etc/nethost.pid")?.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(pid == "\(nethost.pid)", "pidfile: \(pid ?? "missing")")

        let client = try TestClient(connectingTo: "127.0.0.1", port: port)
        #expect(try client.read(until: "\n") == "ready\n")
        try client.send("still here\n")
        #expect(try client.read(until: "\n") == "still here\n")
        #expect(!workspace.exists("ondisconnect.txt"))

        nethost.send(signal: signal)
        let ended = try await nethost.waitForExit(timeout: .seconds(15))
        #expect(ended == .exited(0), "\(nethost.output)")
        #expect(try client.waitForPeerClose(timeout: .seconds(5)), "the client did not see the close")
        #expect(
            workspace.contents(of: "ondisconnect.txt") == "ondisconnect 127.0.0.1 \(client.localPort)\n",
            "ondisconnect did not run (once): \(nethost.output)")
        #expect(!workspace.exists("etc/nethost.pid"), "the pidfile is still there")
        // Whether anything listens on the port now is not asked: the kernel closed
        // nethost's sockets with the process, and another test's server may have
        // taken the number since.
    }
}

extension CommandLineStopTests {
    /// A supervisor may stop NetHost the moment its port opens: that SIGTERM is
    /// graceful too (status 0, pidfile removed), not the default action of the signal.
    @Test
    func aSignalAsSoonAsThePortOpensStillStopsGracefully() async throws {
        let workspace = try CommandLineWorkspace(prefix: "early-stop")
        let port = try FreePort.allocate()
        let config = try workspace.write(
            """
            modules_enabled = { "demo_echo" }
            interfaces = { "127.0.0.1" }
            demo_echo_ports = { \(port) }
            pidfile = "nethost.pid"

            """,
            to: "prosody.cfg.lua")
        let address = try SocketAddressStorage(host: "127.0.0.1", port: port)
        // The window is a few milliseconds wide: try a few times, looking every 0.5 ms.
        for attempt in 1...5 {
            let nethost = try workspace.start(["--config", config])
            defer { nethost.stop() }
            let opened = try await poll(timeout: .seconds(15), interval: .microseconds(500)) { () -> Bool? in
                if isListening(address, ownedBy: nethost.pid) { return true }
                return nethost.checkTermination() == nil ? nil : false
            }
            try #require(opened == true, "attempt \(attempt): nethost did not listen: \(nethost.output)")
            nethost.send(signal: SIGTERM)
            let ended = try await nethost.waitForExit(timeout: .seconds(15))
            #expect(ended == .exited(0), "attempt \(attempt): \(nethost.output)")
            #expect(!workspace.exists("nethost.pid"), "attempt \(attempt): the pidfile was left behind")
            try? FileManager.default.removeItem(atPath: workspace.path("nethost.pid"))
        }
    }
}

@Suite("CommandLine: logging and options")
struct CommandLineLoggingTests {
    /// `log = { info = "nethost.log" }`: a relative file name is beside the config,
    /// and gets the start-up lines (and the console does not).
    @Test
    func theLogOptionWritesAFileBesideTheConfig() async throws {
        let workspace = try CommandLineWorkspace(prefix: "logfile")
        let port = try FreePort.allocate()
        try workspace.write(
            """
            modules_enabled = { "demo_echo" }
            interfaces = { "127.0.0.1" }
            demo_echo_ports = { \(port) }
            log = { info = "nethost.log" }

            """,
            to: "etc/prosody.cfg.lua")
        let nethost = try await workspace.startListening(["--config", "etc/prosody.cfg.lua"], on: [("127.0.0.1", port)])
        defer { nethost.stop() }

        let log = try await poll(timeout: .seconds(10)) { () -> String? in
            guard let text = workspace.contents(of: "etc/nethost.log"), text.contains("started") else { return nil }
            return text
        }
        let text = try #require(log, "no start-up lines in etc/nethost.log: \(workspace.contents(of: "etc/nethost.log") ?? "missing")")
        #expect(text.contains(" info "), "\(text)")
        #expect(text.contains("starting with etc/prosody.cfg.lua"), "\(text)")
        #expect(text.contains("demo_echo"), "\(text)")
        // Once it has exited, its console output is complete.
        #expect(nethost.stop() == .exited(0))
        #expect(!workspace.exists("nethost.log"), "a log file in the current folder")
        #expect(!nethost.output.contains("started"), "the console got the file's lines: \(nethost.output)")
    }

    /// `--log-level debug` shows debug lines on the console; without it they are not there.
    @Test
    func logLevelDebugShowsDebugLinesOnTheConsole() async throws {
        let workspace = try CommandLineWorkspace(prefix: "loglevel")
        let port = try FreePort.allocate()
        let config = try workspace.write(
            """
            plugin_paths = { "plugins" }
            modules_enabled = { "chatty" }
            interfaces = { "127.0.0.1" }
            chatty_ports = { \(port) }

            """,
            to: "prosody.cfg.lua")
        try workspace.write(
            #"""
            module:provides("net", { name = "chatty", listener = {
            	onconnect = function (conn)
            		module:log("debug", "chatty debug line for port %d", conn:port())
            		module:log("info", "chatty info line for port %d", conn:port())
            		conn:write("ok\n")
            	end,
            } })
            """#,
            to: "plugins/mod_chatty.lua")

        for debug in [true, false] {
            let arguments = ["--config", config] + (debug ? ["--log-level", "debug"] : [])
            let nethost = try await workspace.startListening(arguments, on: [("127.0.0.1", port)])
            defer { nethost.stop() }
            let client = try TestClient(connectingTo: "127.0.0.1", port: port)
            #expect(try client.read(until: "\n") == "ok\n")
            try await nethost.waitForLogLine(containing: "chatty info line for port \(client.localPort)")
            // Once it has exited, its output is complete.
            #expect(nethost.stop() == .exited(0))
            let line = nethost.output.split(separator: "\n").first { $0.contains("chatty debug line for port \(client.localPort)") }
            if debug {
                #expect(line?.contains(" debug ") == true, "no debug line with --log-level debug: \(nethost.output)")
            } else {
                #expect(line == nil, "a debug line without --log-level debug: \(nethost.output)")
            }
        }
    }

    @Test
    func versionPrintsAVersionAndExitsZero() async throws {
        let workspace = try CommandLineWorkspace(prefix: "version")
        let result = try await workspace.run(["--version"])
        #expect(result.termination == .exited(0), "\(result.output)")
        let version = result.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(version.wholeMatch(of: /v?[0-9]+\.[0-9]+\.[0-9]+([-+.][0-9A-Za-z.-]+)?/) != nil, "\(result.output)")
    }

    @Test
    func anUnknownLogLevelIsRefused() async throws {
        let workspace = try CommandLineWorkspace(prefix: "badlevel")
        let port = try FreePort.allocate()
        let config = try workspace.write(
            "modules_enabled = { \"echo\" }\ninterfaces = { \"127.0.0.1\" }\necho_ports = { \(port) }\n",
            to: "prosody.cfg.lua")
        let result = try await workspace.run(
            ["--config", config, "--log-level", "chatty"], watching: [("127.0.0.1", port)])
        guard case .exited(let status) = result.termination else {
            Issue.record("\(result.output)")
            return
        }
        #expect(status != 0, "\(result.output)")
        #expect(result.errorLines.count == 1 && result.standardError.contains("chatty"), "\(result.output)")
        #expect(result.listenedOn.isEmpty)
    }
}

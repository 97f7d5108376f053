import Foundation
import SocketTestSupport
import Testing

// A module written for Prosody's network API runs unchanged from a `plugin_paths`
// folder, and an error in one connection's callback closes that connection only
// (README, "Writing a Lua service").

@Suite("CommandLine: Lua services from plugin_paths")
struct CommandLineLuaServiceTests {
    /// A module as a Prosody user writes it: the service is named apart from the
    /// module, has no default port, and uses per-connection state and an option.
    static let greeterModule = #"""
        local greeting = module:get_option_string("greeter_greeting", "hello")
        local names = {}
        local listener = {}

        function listener.onconnect(conn)
        	conn:write(greeting .. " " .. conn:ip() .. " " .. conn:port() .. "\n")
        end

        function listener.onincoming(conn, data)
        	local name = data:match("^name (%w+)")
        	if name then
        		names[conn] = name
        		conn:write("hi " .. name .. "\n")
        	elseif data:match("^quit") then
        		conn:write("bye " .. (names[conn] or "stranger") .. "\n")
        		conn:close()
        	else
        		conn:write(data)
        	end
        end

        function listener.ondisconnect(conn, err)
        	module:log("info", "%s from %s left: %s", names[conn] or "stranger", conn:ip(), tostring(err))
        	names[conn] = nil
        end

        module:provides("net", { name = "talk", listener = listener })
        """#

    @Test
    func aProsodyNetworkModuleInPluginPathsServesAConversation() async throws {
        let workspace = try CommandLineWorkspace(prefix: "plugin")
        let port = try FreePort.allocate()
        try workspace.write(
            """
            plugin_paths = { "plugins" } -- beside this file, not in the current folder
            modules_enabled = { "greeter" }
            interfaces = { "127.0.0.1", "::1" }
            talk_ports = { \(port) }
            greeter_greeting = "howdy"

            """,
            to: "etc/prosody.cfg.lua")
        try workspace.write(Self.greeterModule, to: "etc/plugins/mod_greeter.lua")
        // A decoy where a plugin path taken relative to the current folder would lead.
        try workspace.write(#"error("loaded from the current folder, not beside the config")"#, to: "plugins/mod_greeter.lua")

        let nethost = try await workspace.startListening(
            ["--config", "etc/prosody.cfg.lua"], on: CommandLineWorkspace.onLoopbacks(port))
        defer { nethost.stop() }

        let client = try TestClient(connectingTo: "127.0.0.1", port: port)
        #expect(try client.read(until: "\n") == "howdy 127.0.0.1 \(client.localPort)\n")
        try client.send("ping\n")
        #expect(try client.read(until: "\n") == "ping\n")
        try client.send("name alice\n")
        #expect(try client.read(until: "\n") == "hi alice\n")
        try client.send("quit\n")
        #expect(try client.readToEnd() == Array("bye alice\n".utf8))
        #expect(client.peerClosed)
        try await nethost.waitForLogLine(containing: "alice from 127.0.0.1 left")

        // Over IPv6, and closed by the client this time.
        let v6 = try TestClient(connectingTo: "::1", port: port)
        #expect(try v6.read(until: "\n") == "howdy ::1 \(v6.localPort)\n")
        try v6.send("name bob\n")
        #expect(try v6.read(until: "\n") == "hi bob\n")
        v6.close()
        try await nethost.waitForLogLine(containing: "bob from ::1 left")

        #expect(!nethost.output.contains("current folder"), "\(nethost.output)")
        #expect(nethost.stop() == .exited(0), "\(nethost.output)")
    }

    /// `nethost run --event-loops 2` with `lua_per_loop_services`: two Lua states, and
    /// the service's connections are served by both (docs/lua-on-every-core.md).
    @Test
    func perLoopLuaStatesWithEventLoopsOption() async throws {
        let workspace = try CommandLineWorkspace(prefix: "perloop")
        let port = try FreePort.allocate()
        try workspace.write(
            """
            plugin_paths = { "plugins" }
            modules_enabled = { "states" }
            interfaces = { "127.0.0.1" }
            states_ports = { \(port) }
            lua_per_loop_services = { "states" }

            """,
            to: "etc/prosody.cfg.lua")
        try workspace.write(#"""
            local shared = require "nethost.shared"
            module:provides("net", { name = "states", listener = {
            	onconnect = function (conn) conn:write(shared.state() .. "/" .. shared.states() .. "\n"); conn:close() end,
            } })
            """#, to: "etc/plugins/mod_states.lua")
        let nethost = try await workspace.startListening(
            ["run", "--event-loops", "2", "--config", "etc/prosody.cfg.lua"], on: [("127.0.0.1", port)])
        defer { nethost.stop() }
        var replies: Set<String> = []
        for _ in 0..<48 {
            replies.insert(String(decoding: try TestClient(connectingTo: "127.0.0.1", port: port).readToEnd(), as: UTF8.self))
        }
        // 48 connections all on one of two loops: about once in 2^47 runs.
        #expect(replies == ["1/2\n", "2/2\n"], "\(nethost.output)")
        #expect(nethost.stop() == .exited(0), "\(nethost.output)")
    }

    /// `mod_NAME/mod_NAME.lua` in a plugin path is found, before NetHost's own `modules/`.
    /// (Run as `nethost run`, with the default config `./prosody.cfg.lua`.)
    @Test
    func aPluginShadowsTheShippedModuleOfTheSameName() async throws {
        let workspace = try CommandLineWorkspace(prefix: "shadow")
        let port = try FreePort.allocate()
        try workspace.write(
            """
            plugin_paths = { "plugins" }
            modules_enabled = { "demo_echo" }
            interfaces = { "127.0.0.1" }
            demo_echo_ports = { \(port) }

            """,
            to: "prosody.cfg.lua")
        try workspace.write(
            #"""
            module:provides("net", { name = "demo_echo", listener = {
            	onincoming = function (conn, data) conn:write("plugin echo: " .. data) end,
            } })
            """#,
            to: "plugins/mod_demo_echo/mod_demo_echo.lua")
        let nethost = try await workspace.startListening(["run"], on: [("127.0.0.1", port)])
        defer { nethost.stop() }

        let client = try TestClient(connectingTo: "127.0.0.1", port: port)
        try client.send("x\n")
        #expect(try client.read(until: "\n") == "plugin echo: x\n")
    }

    /// An error in one connection's `onincoming` closes that connection, logged with
    /// its traceback; 100 other open connections on the same Lua loop carry on.
    @Test
    func aLuaErrorClosesOnlyItsConnection() async throws {
        let workspace = try CommandLineWorkspace(prefix: "isolation")
        let port = try FreePort.allocate()
        let config = try workspace.write(
            """
            plugin_paths = { "plugins" }
            modules_enabled = { "fragile" }
            interfaces = { "127.0.0.1" }
            fragile_ports = { \(port) }

            """,
            to: "prosody.cfg.lua")
        try workspace.write(
            #"""
            local listener = {}
            local function explode(conn)
            	local detail = "requested by port " .. conn:port()
            	error("boom " .. detail)
            end
            function listener.onincoming(conn, data)
            	if data:find("boom", 1, true) then explode(conn) end
            	conn:write(data)
            end
            function listener.ondisconnect(conn, err)
            	module:log("info", "fragile: port %d closed: %s", conn:port(), tostring(err))
            end
            module:provides("net", { name = "fragile", listener = listener })
            """#,
            to: "plugins/mod_fragile.lua")
        let nethost = try await workspace.startListening(["--config", config], on: [("127.0.0.1", port)])
        defer { nethost.stop() }

        var others: [TestClient] = []
        for index in 0..<100 {
            let client = try TestClient(connectingTo: "127.0.0.1", port: port)
            try client.send("before \(index)\n")
            #expect(try client.read(until: "\n") == "before \(index)\n")
            others.append(client)
        }
        let victim = try TestClient(connectingTo: "127.0.0.1", port: port)
        try victim.send("hello\n")
        #expect(try victim.read(until: "\n") == "hello\n")

        try victim.send("boom\n")
        #expect(try victim.waitForPeerClose(timeout: .seconds(10)), "the connection whose callback failed stays open")
        let error = try await nethost.waitForLogLine(containing: "boom requested by port \(victim.localPort)")
        #expect(error.contains("mod_fragile.lua:4:"), "the message names the module file and line: \(error)")
        #expect(error.contains("stack traceback"), "no traceback: \(error)")
        #expect(error.contains("mod_fragile.lua:7"), "the traceback does not show the caller: \(error)")
        try await nethost.waitForLogLine(containing: "fragile: port \(victim.localPort) closed")

        for (index, client) in others.enumerated() {
            try client.send("after \(index)\n")
            #expect(try client.read(until: "\n") == "after \(index)\n")
            #expect(!client.peerClosed)
        }
        let late = try TestClient(connectingTo: "127.0.0.1", port: port)
        try late.send("still serving\n")
        #expect(try late.read(until: "\n") == "still serving\n")
        #expect(!nethost.output.contains("fragile: port \(others[0].localPort) closed"), "\(nethost.output)")
        #expect(nethost.isRunning)
    }
}

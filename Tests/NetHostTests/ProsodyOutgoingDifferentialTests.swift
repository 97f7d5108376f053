import Foundation
import NetHostTestSupport
import Testing
@testable import NetHost

/// The same outgoing-connection scenario run by Prosody 0.12's own net.server
/// (server_epoll, under lua5.4, with LuaSocket) and by NetHost: the callbacks each
/// listener hears, their order per connection, the `conn` identity and the error
/// words must agree.
@Suite("Outgoing connections: NetHost and Prosody 0.12 agree", .serialized,
       .enabled(if: ProsodyDriver.isAvailable, "needs lua5.4 and Prosody 0.12 under /usr/lib/prosody"))
struct ProsodyOutgoingDifferentialTests {
    /// `run(server, echo_port, closed_port, trace, finished)`: one connection to an
    /// echo server (a write before it is connected, one in onconnect, close once both
    /// came back), one to a closed port. `finished()` once both have disconnected.
    static let scenario = #"""
    return function (server, echo_port, closed_port, trace, finished)
    	local pending = 2
    	local function done() pending = pending - 1; if pending == 0 then finished() end end
    	local echo, refused
    	local received = ""
    	local echo_listener = {}
    	function echo_listener.onconnect(c)
    		trace("echo connect same=" .. tostring(c == echo) .. " ip=" .. tostring(c:ip()) .. " port=" .. tostring(c:port() == echo_port))
    		c:write("ping\n")
    	end
    	function echo_listener.onincoming(c, d)
    		received = received .. d
    		if received:find("ping\n", 1, true) then
    			trace("echo got " .. received:gsub("\n", "|"))
    			c:close()
    		end
    	end
    	function echo_listener.ondisconnect(c, err)
    		trace("echo disconnect same=" .. tostring(c == echo) .. " " .. tostring(err))
    		done()
    	end
    	echo = server.addclient("127.0.0.1", echo_port, echo_listener, "*a", nil, "tcp")
    	-- A table in Prosody, a userdata in NetHost (as every conn is): only its presence is compared.
    	trace("echo returned " .. tostring(echo ~= nil))
    	echo:write("early\n")
    	local refused_listener = {}
    	function refused_listener.onconnect() trace("refused connect") end
    	function refused_listener.ondisconnect(c, err)
    		trace("refused disconnect same=" .. tostring(c == refused) .. " " .. tostring(err))
    		done()
    	end
    	refused = server.addclient("127.0.0.1", closed_port, refused_listener, "*a", nil, "tcp")
    	trace("refused returned " .. tostring(refused ~= nil))
    end
    """#

    /// Lines of one connection ("echo ..." or "refused ..."), in the order they came.
    static func byConnection(_ lines: [String]) -> [String: [String]] {
        Dictionary(grouping: lines) { String($0.prefix { $0 != " " }) }
    }

    static func prosody(echoPort: Int, closedPort: Int, directory: String) throws -> [String] {
        let scenarioFile = directory + "/scenario.lua", driver = directory + "/driver.lua"
        try scenario.write(toFile: scenarioFile, atomically: true, encoding: .utf8)
        try #"""
        package.path = "/usr/lib/prosody/?.lua;" .. package.path
        package.cpath = "/usr/lib/prosody/?.so;" .. package.cpath
        local server = require "net.server_epoll"
        local lines = {}
        local run = dofile(arg[1])
        run(server, tonumber(arg[2]), tonumber(arg[3]), function (s) lines[#lines + 1] = s end,
        	function () server.setquitting(true) end)
        server.add_task(10, function () lines[#lines + 1] = "timed out"; server.setquitting(true) end)
        server.loop()
        for _, line in ipairs(lines) do print(line) end
        """#.write(toFile: driver, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ProsodyDriver.lua)
        process.arguments = [driver, scenarioFile, String(echoPort), String(closedPort)]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return text.split(separator: "\n").map(String.init)
    }

    @Test("addclient to an echo server and to a closed port: the same callbacks, conn values and reasons")
    func sameCallbacks() async throws {
        let backend = try LoopbackBackend(mode: .echo)
        defer { backend.shutdown() }
        let closed = try FreePort.allocate()
        let fixture = try HostFixture(modules: ["diff": #"""
            local server = require "net.server"
            local run = assert(load(module:get_option_string("diff_scenario")))()
            module:provides("net", { name = "diff", listener = {
            	onincoming = function (conn, data)
            		local echo_port, closed_port = data:match("^(%d+) (%d+)\n")
            		local lines = {}
            		run(server, tonumber(echo_port), tonumber(closed_port), function (s) lines[#lines + 1] = s end,
            			function () conn:write(table.concat(lines, "\n") .. "\nend\n") end)
            	end } })
            """#])
        let prosody = try Self.prosody(echoPort: backend.port, closedPort: closed, directory: fixture.directory)
        try await fixture.start(options: [
            "modules_enabled": .strings("diff"), "diff_ports": .list(.integer(0)), "diff_scenario": .string(Self.scenario),
        ])
        let client = try fixture.connect(to: "diff")
        try client.send("\(backend.port) \(closed)\n")
        var nethost: [String] = []
        while let line = try? client.readLine(), line != "end" { nethost.append(line) }
        await fixture.stop()
        #expect(prosody.contains("refused disconnect same=true connection refused"), "\(prosody)")
        #expect(Self.byConnection(nethost) == Self.byConnection(prosody), "NetHost: \(nethost)\nProsody: \(prosody)")
    }
}

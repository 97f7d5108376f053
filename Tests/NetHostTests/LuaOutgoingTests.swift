import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NetHostTestSupport
import Testing
@testable import NetHost
@testable import NetHostCore
@testable import NetHostLua

/// Lua's outgoing connections (`net.server.addclient`, `net.connect`) over real
/// sockets on loopback. The `driver` service is the test's hand inside the host:
/// each line a test client sends it opens an outgoing connection, and it reports
/// every callback of that connection back, one line each.
@Suite("Lua outgoing connections", .serialized)
struct LuaOutgoingTests {
    static let driver = #"""
    local server = require "net.server"
    local connect = require "net.connect".connect
    local basic = require "net.resolvers.basic"

    local function report(conn, text) conn:write(text .. "\n") end

    local listener = {}
    function listener.onincoming(conn, data)
    	for line in data:gmatch("[^\n]+") do
    		local verb, host, port = line:match("^(%S+) (%S+) (%d+)$")
    		local out
    		local out_listener = {}
    		function out_listener.onconnect(c)
    			report(conn, "connected same=" .. tostring(c == out) .. " ip=" .. c:ip() .. " port=" .. c:port())
    			c:write("after connect\n")
    		end
    		function out_listener.onincoming(c, d)
    			for l in d:gmatch("[^\n]+") do report(conn, "got " .. l) end
    		end
    		function out_listener.ondisconnect(c, err)
    			report(conn, "disconnected same=" .. tostring(c == out) .. " " .. tostring(err))
    		end
    		if verb == "addclient" then
    			out = server.addclient(host, tonumber(port), out_listener, nil, nil, "tcp")
    			report(conn, "returned " .. type(out))
    			out:write("before connect\n") -- waits for the connection
    		elseif verb == "connect" then
    			out_listener.onfail = function (data, err) report(data, "onfail " .. tostring(err)) end
    			local wrapped = out_listener.onconnect
    			out_listener.onconnect = function (c) out = c; return wrapped(c) end
    			connect(basic.new(host, tonumber(port)), out_listener, nil, conn)
    			report(conn, "returned nothing")
    		end
    	end
    end
    module:provides("net", { name = "driver", listener = listener })
    """#

    private func withDriver(options: [String: ConfigValue] = [:], _ body: (HostFixture) async throws -> Void) async throws {
        var all = options
        all["modules_enabled"] = .strings("driver")
        all["driver_ports"] = .list(.integer(0))
        try await HostFixture.running(modules: ["driver": Self.driver], options: all, body)
    }

    /// Lines from `client` until one starts with `prefix` (that one included).
    private func lines(from client: TestClient, until prefix: String) throws -> [String] {
        var lines: [String] = []
        repeat {
            lines.append(try client.readLine())
        } while !(lines.last ?? "").hasPrefix(prefix) && lines.count < 20
        return lines
    }

    @Test("addclient to an echo server on IPv4 and IPv6: the conn comes back at once, onconnect gets that same conn, lines go both ways",
          arguments: ["127.0.0.1", "::1"])
    func echo(address: String) async throws {
        let backend = try LoopbackBackend(host: address, mode: .echo)
        defer { backend.shutdown() }
        try await withDriver { fixture in
            let client = try fixture.connect(to: "driver")
            try client.send("addclient \(address) \(backend.port)\n")
            #expect(try client.readLine() == "returned userdata")
            #expect(try client.readLine() == "connected same=true ip=\(address) port=\(backend.port)")
            // What was written before the connection was made goes first.
            #expect(try client.readLine() == "got before connect")
            #expect(try client.readLine() == "got after connect")
        }
    }

    @Test("a host name is resolved off the loop and connected to ('localhost')")
    func hostName() async throws {
        let backend = try LoopbackBackend(host: "127.0.0.1", mode: .echo)
        defer { backend.shutdown() }
        try await withDriver { fixture in
            let client = try fixture.connect(to: "driver")
            try client.send("addclient localhost \(backend.port)\n")
            #expect(try client.readLine() == "returned userdata")
            #expect(try client.readLine() == "connected same=true ip=127.0.0.1 port=\(backend.port)")
            #expect(try client.readLine() == "got before connect")
        }
    }

    @Test("a closed port: ondisconnect with 'connection refused', on the conn addclient returned")
    func refused() async throws {
        let port = try FreePort.allocate()
        try await withDriver { fixture in
            let client = try fixture.connect(to: "driver")
            try client.send("addclient 127.0.0.1 \(port)\n")
            #expect(try client.readLine() == "returned userdata")
            #expect(try client.readLine() == "disconnected same=true connection refused")
            #expect(fixture.logs.contains("could not connect: connection refused"))
        }
    }

    @Test("a name that does not resolve: ondisconnect says so")
    func unresolvable() async throws {
        try await withDriver { fixture in
            let client = try fixture.connect(to: "driver")
            try client.send("addclient nonexistent.invalid 7000\n")
            #expect(try client.readLine() == "returned userdata")
            let line = try client.readLine()
            #expect(line.hasPrefix("disconnected same=true could not resolve 'nonexistent.invalid': "), "\(line)")
        }
    }

    @Test("net.connect with net.resolvers.basic: connects and hands over to the listeners; onfail when nothing connects")
    func netConnect() async throws {
        let backend = try LoopbackBackend(host: "127.0.0.1", mode: .echo)
        defer { backend.shutdown() }
        let closed = try FreePort.allocate()
        try await withDriver { fixture in
            let client = try fixture.connect(to: "driver")
            try client.send("connect 127.0.0.1 \(backend.port)\n")
            #expect(try client.readLine() == "returned nothing")
            #expect(try client.readLine() == "connected same=true ip=127.0.0.1 port=\(backend.port)")
            #expect(try client.readLine() == "got after connect")
            try client.send("connect 127.0.0.1 \(closed)\n")
            #expect(try client.readLine() == "returned nothing")
            #expect(try client.readLine() == "onfail connection refused")
        }
    }
}

/// The driver module on an `EmbeddedEventLoop`, with a transport whose attempts
/// never complete: the connect timeout from `network_settings.connect_timeout`,
/// on virtual time, as the Lua listener sees it.
@Suite("Lua outgoing connections: connect timeout on virtual time")
struct LuaOutgoingTimeoutTests {
    @Test("connect_timeout = 5: nothing at 4.999 s, ondisconnect 'connection timed out' at 5 s")
    func timeout() throws {
        let harness = try ModuleHarness(
            modules: ["driver": LuaOutgoingTests.driver],
            options: [
                "modules_enabled": .strings("driver"),
                "network_settings": .table(ConfigTable(map: [.string("connect_timeout"): .number(5)])),
            ]
        )
        let transport = StalledTransport()
        defer { transport.finish() }
        harness.manager.runtime.outgoingTransport = transport
        let channel = try harness.connect(to: "driver")
        try channel.writeInbound(ByteBuffer(string: "addclient 192.0.2.1 7000\n"))
        harness.loop.run()
        #expect(try channel.sent() == "returned userdata\n")
        #expect(transport.attempts.map(\.port) == [7000])
        harness.advance(by: .milliseconds(4_999))
        #expect(try channel.sent() == "")
        harness.advance(by: .milliseconds(1))
        #expect(try channel.sent() == "disconnected same=true connection timed out\n")
    }
}

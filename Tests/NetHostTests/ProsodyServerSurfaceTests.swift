import Foundation
import NetHostTestSupport
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostLua

/// The parts of Prosody's server that modules reach for besides their own
/// socket, over real sockets: `net.server.link`, `conn:socket()`, the port
/// manager's view of open ports, and the global events of a running server
/// (`service-added`, `service-removed`, `config-reloaded`).
@Suite("Prosody's net.server and port manager, as modules use them", .serialized)
struct ProsodyServerSurfaceTests {
    /// A relay written as Prosody modules write one: each client gets a backend
    /// connection, and once it is up the two are linked both ways.
    static let linkedRelay = #"""
    local server = require "net.server"
    local backend_port = module:get_option_number("test_backend_port")
    local pending = {}
    local listener = {}
    function listener.onconnect(conn)
    	conn:pause()
    	local out = server.addclient("127.0.0.1", backend_port, {
    		onconnect = function (backend)
    			server.link(conn, backend)
    			server.link(backend, conn)
    			conn:resume()
    		end,
    		ondisconnect = function () conn:close() end,
    	}, nil, nil, "tcp")
    	pending[conn] = out
    end
    function listener.onincoming(conn, data)
    	-- Never called once linked: link sends the data to the backend itself.
    	conn:write("onincoming ran\n")
    end
    function listener.ondisconnect(conn)
    	local out = pending[conn]
    	pending[conn] = nil
    	if out then out:close() end
    	module:log("info", "relay client gone")
    end
    module:provides("net", { name = "relay", listener = listener })
    """#

    @Test("net.server.link relays both ways byte for byte without the listener's onincoming; ondisconnect still runs")
    func linkRelays() async throws {
        let backend = try LoopbackBackend(mode: .echo)
        defer { backend.shutdown() }
        let options: [String: ConfigValue] = [
            "modules_enabled": .strings("relay"), "relay_ports": .list(.integer(0)),
            "test_backend_port": .integer(backend.port),
        ]
        try await HostFixture.running(modules: ["relay": Self.linkedRelay], options: options) { fixture in
            let client = try fixture.connect(to: "relay")
            // 1 MiB of a pattern no two chunks share, through the relay and back, a
            // chunk at a time (what is in flight fits the sockets' buffers).
            let payload = TestBytes.pseudoRandom(count: 1 << 20)
            var received: [UInt8] = []
            for start in stride(from: 0, to: payload.count, by: 64 * 1024) {
                let chunk = Array(payload[start..<min(start + 64 * 1024, payload.count)])
                try client.send(chunk)
                received += try client.read(count: chunk.count)
            }
            #expect(received == payload)
            client.close()
            #expect(fixture.eventually { fixture.logs.contains("relay client gone") })
        }
    }

    static let sockets = #"""
    local portmanager = require "core.portmanager"
    module:provides("net", { name = "sockets", listener = {
    	onconnect = function (conn)
    		local sock = conn:socket()
    		local peer_ip, peer_port, peer_family = sock:getpeername()
    		local own_ip, own_port, own_family = sock:getsockname()
    		conn:write(("peer %s %d %s\n"):format(peer_ip, peer_port, peer_family))
    		conn:write(("own %s %d %s\n"):format(own_ip, own_port, own_family))
    		conn:write(("nodelay %s\n"):format(tostring(sock:setoption("tcp-nodelay", true))))
    		-- As Prosody's portmanager reads it: each match is a list whose first item is the entry.
    		local found = portmanager.get_active_services():search("sockets", nil, nil)
    		for _, match in ipairs(found) do
    			conn:write(("active %s\n"):format(match[1].service.name))
    		end
    		local here = portmanager.get_active_services():get("sockets", own_ip, own_port)
    		conn:write(("here %s\n"):format(here and here[1].service.name or "none"))
    	end,
    } })
    """#

    @Test(
        "conn:socket() answers getpeername, getsockname and setoption as LuaSocket does; get_active_services lists the open ports",
        .enabled(if: ProsodyLibraryTests.libraryInstalled, "get_active_services is a util.multitable, from Prosody's library")
    )
    func socketAndActiveServices() async throws {
        let options: [String: ConfigValue] = ["modules_enabled": .strings("sockets"), "sockets_ports": .list(.integer(0))]
        try await HostFixture.running(modules: ["sockets": Self.sockets], options: options) { fixture in
            let client = try fixture.connect(to: "sockets")
            #expect(try client.readLine() == "peer 127.0.0.1 \(client.localPort) inet")
            #expect(try client.readLine() == "own 127.0.0.1 \(client.remoteAddress.port) inet")
            #expect(try client.readLine() == "nodelay true")
            #expect(try client.readLine() == "active sockets")
            #expect(try client.readLine() == "here sockets")
        }
    }

    static let watcher = #"""
    module:hook_global("service-added", function (event)
    	module:log("info", "event service-added %s %s", event.name, tostring(event.service and event.service.name))
    end)
    module:hook_global("service-removed", function (event)
    	module:log("info", "event service-removed %s", event.name)
    end)
    module:hook_global("config-reloaded", function ()
    	module:log("info", "event config-reloaded, greeting now %s", module:get_option_string("greeting"))
    end)
    """#

    static let greeter = #"""
    module:provides("net", { name = "greeter", listener = { onconnect = function (conn) conn:write("hi\n") end } })
    """#

    @Test("service-added and service-removed fire as modules come and go; config-reloaded fires once a reload is in force")
    func globalEvents() async throws {
        func options(greeter: Bool, greeting: String) -> [String: ConfigValue] {
            [
                "modules_enabled": greeter ? .strings("watcher", "greeter") : .strings("watcher"),
                "greeter_ports": .list(.integer(0)), "greeting": .string(greeting),
            ]
        }
        let fixture = try HostFixture(modules: ["watcher": Self.watcher, "greeter": Self.greeter])
        try await fixture.start(options: options(greeter: true, greeting: "hello"))
        #expect(fixture.logs.contains("event service-added greeter greeter"))
        #expect(!fixture.logs.contains("event config-reloaded"))

        try await fixture.server?.reload(FixedOptions(global: options(greeter: false, greeting: "bonjour")))
        #expect(fixture.logs.contains("event service-removed greeter"))
        #expect(fixture.logs.contains("event config-reloaded, greeting now bonjour"))
        await fixture.stop()
    }
}

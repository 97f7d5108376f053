-- mod_tcp_relay: relays each connection to a backend, both ways, byte for byte.
--
--   modules_enabled = { "tcp_relay" }
--   tcp_relay_ports = { 7100 }                 -- or proxy_port_mappings = { [17100] = "tcp_relay" }
--   tcp_relay_backend = "backend.example:7000" -- "[2001:db8::1]:7000" for an IPv6 address
--   tcp_relay_send_proxy = true                -- send the backend a PROXY v2 header first
--   tcp_relay_backend_tls = false              -- TLS to the backend, verified against the system CAs
--
-- With tcp_relay_send_proxy the backend learns the real client: the one the load
-- balancer named when the connection came through net_proxy, else the TCP peer.
-- Flow control is NetHost's own: while one side's writes wait for a slow peer, the
-- side whose data they are stops reading, so a relay holds a bounded amount however
-- fast one end sends (see "Backpressure" in docs/lua-api.md).
local server = require "net.server"

local backend = module:get_option_string("tcp_relay_backend")
local send_proxy = module:get_option_boolean("tcp_relay_send_proxy", false)
local backend_tls = module:get_option_boolean("tcp_relay_backend_tls", false)

local function parse(target)
	if type(target) ~= "string" then return nil end
	local host, port = target:match("^%[(.+)%]:(%d+)$")
	if not host then host, port = target:match("^([^:]+):(%d+)$") end
	port = tonumber(port)
	if not host or not port or port < 1 or port > 65535 then return nil end
	return host, port
end

local backend_host, backend_port = parse(backend)
if not backend_host then
	module:log("error", "tcp_relay_backend must be \"host:port\" (or \"[ipv6]:port\"), got %s", tostring(backend))
end

-- Each client conn and its backend conn, both ways.
local peers = {}

local backend_listener = {}

function backend_listener.onconnect(conn)
	local client = peers[conn]
	if client then client:resume() end
end

function backend_listener.onincoming(conn, data)
	local client = peers[conn]
	if client then client:write(data) end
end

function backend_listener.ondisconnect(conn, err)
	local client = peers[conn]
	peers[conn] = nil
	if not client then return end
	peers[client] = nil
	if err then
		module:log("info", "backend %s:%d for client %s: %s", backend_host, backend_port, tostring(client:ip()), err)
	end
	client:close() -- after what the backend sent has reached the client
end

local client_listener = {}

function client_listener.onconnect(conn)
	if not backend_host then
		conn:close()
		return
	end
	-- Nothing is read from the client until the backend answers: what it sends
	-- meanwhile waits in its socket rather than in the relay's memory.
	conn:pause()
	local out, err = server.addclient(backend_host, backend_port, backend_listener, nil, backend_tls or nil, "tcp")
	if not out then
		module:log("warn", "cannot relay %s: %s", tostring(conn:ip()), tostring(err))
		conn:close()
		return
	end
	peers[conn], peers[out] = out, conn
	if send_proxy then
		local header = conn:proxy_v2_header()
		if header then out:write(header) end
	end
end

function client_listener.onincoming(conn, data)
	local out = peers[conn]
	if out then out:write(data) end
end

function client_listener.ondisconnect(conn)
	local out = peers[conn]
	peers[conn] = nil
	if not out then return end
	peers[out] = nil
	out:close() -- after what the client sent has reached the backend
end

module:provides("net", { name = "tcp_relay", listener = client_listener, default_port = 7100 })

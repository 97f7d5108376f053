-- mod_demo_echo: sends every byte it receives straight back.
-- Enable it with modules_enabled = { "demo_echo" } and choose ports with demo_echo_ports.

local listener = {}

function listener.onconnect(conn)
	module:log("debug", "echo connection from %s port %d", conn:ip(), conn:port())
end

function listener.onincoming(conn, data)
	conn:write(data)
end

function listener.ondisconnect(conn, err)
	module:log("debug", "echo connection from %s closed: %s", conn:ip(), tostring(err or "normally"))
end

module:provides("net", {
	name = "demo_echo",
	listener = listener,
	default_port = 7777,
})

-- mod_bench_whoami_keep: mod_bench_whoami's reply, but the connection stays open
-- until the client closes it (the shape of a service that keeps its clients),
-- for scripts/bench's "client closes first" measurement. Prosody's net API only,
-- so the same file runs under NetHost and under Prosody 0.12 + mod_net_proxy.

-- Global, as Prosody needs for a net service that no VirtualHost owns.
module:set_global()

local listener = {}

function listener.onconnect(conn)
	conn:write(conn:ip() .. " " .. conn:port() .. "\n")
end

function listener.onincoming(conn, data) -- luacheck: ignore
end

module:provides("net", {
	name = "bench_whoami_keep",
	listener = listener,
})

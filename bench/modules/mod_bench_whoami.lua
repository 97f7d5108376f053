-- mod_bench_whoami: the Lua twin of NetHost's Swift `whoami` service, for the
-- benchmarks. Answers each connection with "ip port\n" (the client as the PROXY
-- header named it) and closes. Written against Prosody's net API only, so the
-- same file runs under NetHost and under Prosody 0.12 + mod_net_proxy.

-- Global, as Prosody needs for a net service that no VirtualHost owns.
module:set_global()

local listener = {}

function listener.onconnect(conn)
	conn:write(conn:ip() .. " " .. conn:port() .. "\n")
	conn:close()
end

function listener.onincoming(conn, data) -- luacheck: ignore
end

module:provides("net", {
	name = "bench_whoami",
	listener = listener,
})

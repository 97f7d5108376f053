-- mod_bench_echo: a Lua echo service for the benchmarks, the same under
-- NetHost and Prosody 0.12: every byte received is written straight back.

-- Global, as Prosody needs for a net service that no VirtualHost owns.
module:set_global()

local listener = {}

function listener.onincoming(conn, data)
	conn:write(data)
end

module:provides("net", {
	name = "bench_echo",
	listener = listener,
})

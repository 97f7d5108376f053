-- mod_bench_cpu: a CPU-bound whoami for the per-loop Lua benchmark
-- (scripts/bench --systems "nethost-lua-cpu nethost-lua-perloop"). Each
-- connection runs bench_cpu_iterations steps of arithmetic in Lua, then answers
-- "ip port\n" and closes. Each Lua state counts what it served in a local
-- variable (no shared lock per connection) and publishes the count to the shared
-- dict "bench" a few times a second, for mod_bench_cpu_stats to report how the
-- connections spread over the states.

module:set_global()

local shared = require "nethost.shared"
local published = shared.dict("bench")
local state = shared.state()
local iterations = module:get_option_integer("bench_cpu_iterations", 20000, 0)
local served = 0

local listener = {}

function listener.onconnect(conn)
	local x = 1
	for i = 1, iterations do x = (x * 31 + i) % 1000003 end
	served = served + 1
	conn:write(conn:ip() .. " " .. conn:port() .. (x < 0 and "!" or "") .. "\n")
	conn:close()
end

function listener.onincoming(conn, data) -- luacheck: ignore
end

module:add_timer(0.2, function ()
	published:set("served_" .. state, served)
	return 0.2
end)

module:provides("net", {
	name = "bench_cpu",
	listener = listener,
})

-- mod_bench_cpu_stats: answers one line, "states=N served_1=A served_2=B ...",
-- with the connections each Lua state of mod_bench_cpu has served (as last
-- published, at most 0.2 s ago), and closes.

module:set_global()

local shared = require "nethost.shared"
local published = shared.dict("bench")

module:provides("net", {
	name = "bench_cpu_stats",
	listener = {
		onconnect = function (conn)
			local parts = { "states=" .. shared.states() }
			for state = 1, shared.states() do
				parts[#parts + 1] = ("served_%d=%d"):format(state, published:get("served_" .. state) or 0)
			end
			conn:write(table.concat(parts, " ") .. "\n")
			conn:close()
		end,
	},
})

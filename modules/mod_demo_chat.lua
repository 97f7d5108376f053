-- mod_demo_chat: a line-based chat room. Every line a client sends goes to every
-- other client, prefixed with the sender's address. Shows per-connection
-- state, a shared table, a timer and the read-timeout callback.

local clients = module:shared("clients")  -- conn -> { name = ..., partial = ... }
local max_line = module:get_option_integer("demo_chat_max_line_length", 1024, 16)

local listener = {}

local function broadcast(from, text)
	for conn in pairs(clients) do
		if conn ~= from then conn:write(text) end
	end
end

function listener.onconnect(conn)
	clients[conn] = { name = conn:ip() .. ":" .. conn:port(), partial = "" }
	conn:write("welcome, " .. clients[conn].name .. "\n")
	broadcast(conn, "* " .. clients[conn].name .. " joined\n")
end

local function refuse_long_line(conn)
	conn:write("line too long\n")
	conn:close()
end

function listener.onincoming(conn, data)
	local client = clients[conn]
	if not client then return end
	client.asked = nil
	local buffer = client.partial .. data
	-- Lines are cut with a plain find, which is linear in the buffer: a pattern
	-- such as "([^\n]*)\n" rescans the rest of the buffer from every position,
	-- so one long line without a newline would cost quadratic time in a single
	-- C call that no instruction budget can interrupt.
	local start = 1
	while true do
		local newline = buffer:find("\n", start, true)
		if not newline then break end
		if newline - start > max_line then return refuse_long_line(conn) end
		local line = buffer:sub(start, newline - 1):gsub("\r$", "")
		broadcast(conn, client.name .. ": " .. line .. "\n")
		start = newline + 1
	end
	client.partial = buffer:sub(start)
	if #client.partial > max_line then return refuse_long_line(conn) end
end

-- Asked once; a client that stays silent a second read_timeout is closed, so an
-- idle connection does not hold its slot for ever.
function listener.onreadtimeout(conn)
	local client = clients[conn]
	if not client or client.asked then return false end
	client.asked = true
	conn:write("* still there?\n")
	return true
end

function listener.ondisconnect(conn)
	local client = clients[conn]
	clients[conn] = nil
	if client then broadcast(conn, "* " .. client.name .. " left\n") end
end

module:add_timer(60, function ()
	local count = 0
	for _ in pairs(clients) do count = count + 1 end
	module:log("debug", "%d chat clients connected", count)
	return 60
end)

module:provides("net", {
	name = "demo_chat",
	listener = listener,
	default_port = 7778,
})

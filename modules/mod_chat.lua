-- mod_chat: a line-based chat room. Every line a client sends goes to every
-- other client, prefixed with the sender's address. Shows per-connection
-- state, a shared table, a timer and the read-timeout callback.

local clients = module:shared("clients")  -- conn -> { name = ..., partial = ... }
local max_line = module:get_option_integer("chat_max_line_length", 1024, 16)

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

function listener.onincoming(conn, data)
	local client = clients[conn]
	if not client then return end
	local buffer = client.partial .. data
	for line in buffer:gmatch("([^\n]*)\n") do
		broadcast(conn, client.name .. ": " .. line:gsub("\r$", "") .. "\n")
	end
	client.partial = buffer:match("[^\n]*$")
	if #client.partial > max_line then
		conn:write("line too long\n")
		conn:close()
	end
end

function listener.onreadtimeout(conn)
	conn:write("* still there?\n")
	return true -- keep the connection
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
	name = "chat",
	listener = listener,
	default_port = 7778,
})

/// A Lua service that exercises every callback and connection method, driven
/// by one-line commands from the test client.
enum ProbeModule {
    static let source = #"""
local stats = { connects = 0, disconnects = 0, drains = 0, floods = 0, reasons = {} }
local listener, other = {}, {}
-- By the client's port: the conn value onconnect was given, and how many times
-- ondisconnect ran and whether it was given that same value each time.
local first_conn, disconnects_of, disconnected_same = {}, {}, {}

local function reply(conn, text) conn:write(text .. "\n") end

function listener.onconnect(conn)
	stats.connects = stats.connects + 1
	first_conn[conn:port()] = conn
	reply(conn, "hello")
end

function listener.onincoming(conn, data)
	for line in data:gmatch("[^\n]+") do
		local command, argument = line:match("^(%S+)%s*(.*)$")
		if command == "echo" then
			reply(conn, argument)
		elseif command == "stats" then
			reply(conn, ("connects=%d disconnects=%d drains=%d floods=%d reasons=%s"):format(
				stats.connects, stats.disconnects, stats.drains, stats.floods, table.concat(stats.reasons, ",")))
		elseif command == "boom" then
			error("boom from the probe")
		elseif command == "close" then
			reply(conn, "bye")
			conn:close()
		elseif command == "flood" then
			local chunk = string.rep("x", 65536)
			for _ = 1, tonumber(argument) // 65536 do
				if not conn:write(chunk) then break end
			end
			stats.floods = stats.floods + 1
		elseif command == "who" then
			reply(conn, ("%s %d %d %s"):format(conn:ip(), conn:port(), conn:serverport(), tostring(conn.proxyip)))
		elseif command == "pause" then
			conn:pause()
			reply(conn, "paused")
			module:add_timer(tonumber(argument), function () reply(conn, "resumed"); conn:resume() end)
		elseif command == "switch" then
			conn:setlistener(other, "payload")
		elseif command == "readtimeout" then
			conn:setreadtimeout(tonumber(argument))
		elseif command == "option" then
			reply(conn, tostring(conn:setoption("tcp-nodelay", true)))
		elseif command == "same" then
			-- rawequal: the very value onconnect got, not one that merely compares equal.
			reply(conn, tostring(rawequal(first_conn[conn:port()], conn)))
		elseif command == "disconnects" then
			local port = tonumber(argument)
			reply(conn, ("%d same=%s"):format(disconnects_of[port] or 0, tostring(disconnected_same[port])))
		end
	end
end

function listener.ondrain(conn)
	stats.drains = stats.drains + 1
end

function listener.onreadtimeout(conn)
	reply(conn, "timeout")
	return false
end

function listener.ondisconnect(conn, reason)
	stats.disconnects = stats.disconnects + 1
	stats.reasons[#stats.reasons + 1] = tostring(reason)
	local port = conn:port()
	disconnects_of[port] = (disconnects_of[port] or 0) + 1
	disconnected_same[port] = disconnected_same[port] ~= false and rawequal(first_conn[port], conn)
end

function listener.ondetach(conn)
	reply(conn, "detached")
end

function other.onattach(conn, data)
	reply(conn, "attached " .. tostring(data))
end

function other.onincoming(conn, data)
	conn:write("other: " .. data)
end

function other.ondisconnect(conn, reason)
	stats.disconnects = stats.disconnects + 1
	stats.reasons[#stats.reasons + 1] = "other:" .. tostring(reason)
end

module:provides("net", { name = "probe", listener = listener, default_port = 0 })
"""#
}

-- The benchmark services as HAProxy 2.6 Lua applets, for scripts/bench's
-- "haproxy-lua" system: the same replies as bench/modules' Prosody modules give
-- on NetHost and Prosody. With `bind ... accept-proxy`, applet.f:src() and
-- src_port() are the client the PROXY header named.
--
-- HAProxy 2.6's AppletTCP:receive(n) returns only once n bytes are in (there is
-- no "whatever has arrived" read before 2.8), so the echo is registered once per
-- message size the load generator sends: each waits for one whole message and
-- sends it back, which is what the ping-pong of scripts/bench needs.
--
-- An applet that sends and then waits in receive() must yield in between: in
-- HAProxy 2.6 what it sent otherwise stays in the buffer until something else
-- wakes the stream (measured: 16 replies a second instead of 5,000).

local function whoami_line(applet)
	return applet.f:src() .. " " .. applet.f:src_port() .. "\n"
end

-- Answers and closes (the server closes first).
core.register_service("whoami", "tcp", function(applet)
	applet:send(whoami_line(applet))
end)

-- Answers and keeps the connection until the client closes it.
core.register_service("whoami_keep", "tcp", function(applet)
	applet:send(whoami_line(applet))
	core.yield()
	repeat
		local data = applet:receive(1)
	until data == nil or data == ""
end)

local function echo_of(size)
	return function(applet)
		while true do
			local data = applet:receive(size)
			if data == nil or #data < size then return end
			applet:send(data)
			core.yield()
		end
	end
end

core.register_service("echo_1", "tcp", echo_of(1))          -- idle connections: one byte each
core.register_service("echo_64", "tcp", echo_of(64))
core.register_service("echo_16k", "tcp", echo_of(16384))

-- mod_demo_client_info: tells each client what the server knows about it, then
-- closes. Behind net_proxy it shows the address from the PROXY header, the
-- proxy's own address and every field of the header. Handy to check a
-- load balancer's set-up:  printf '' | nc your-proxy 17780 (the example config's mapping)

local listener = {}

local function field_lines(prefix, value, lines)
	if type(value) == "table" then
		local keys = {}
		for k in pairs(value) do keys[#keys + 1] = k end
		table.sort(keys, function (a, b) return tostring(a) < tostring(b) end)
		for _, k in ipairs(keys) do field_lines(prefix .. "." .. tostring(k), value[k], lines) end
	else
		lines[#lines + 1] = prefix .. " = " .. tostring(value)
	end
	return lines
end

function listener.onconnect(conn)
	local lines = {
		"client " .. conn:ip() .. " " .. conn:port(),
		"server port " .. conn:serverport(),
	}
	if conn:proxyip() then
		lines[#lines + 1] = "proxy " .. conn:proxyip() .. " " .. conn:proxyport()
		field_lines("header", conn:proxyheader(), lines)
	end
	conn:write(table.concat(lines, "\n") .. "\n")
	conn:close()
end

module:provides("net", {
	name = "demo_client_info",
	listener = listener,
	default_port = 7780,
})

-- What a Prosody module finds around it besides the module API: Prosody's own
-- library on require's path (util.set, util.array, util.ip, ...: Debian's prosody
-- package installs it), NetHost's own versions of the modules that are the
-- server's internals (util.timer, net.server's timers, util.logger,
-- core.configmanager), and the `prosody` and `hosts` globals.
-- A Lua chunk of the module API.
local host, nethost = ...
local ipairs, pairs, pcall, select, tostring, setmetatable = ipairs, pairs, pcall, select, tostring, setmetatable
local s_format = string.format

local library = host.prosody_library()
if library then
	package.path = library .. "/?.lua;" .. package.path
	package.cpath = library .. "/?.so;" .. package.cpath
end

-- Modules the host provides itself, backed by its own machinery.
local timer = {}
function timer.add_task(delay, callback, param)
	local id
	id = host.add_timer("util.timer", "*", delay, function (now)
		return callback(now, id, param)
	end)
	return id
end
function timer.stop(id) host.stop_timer(id) end
function timer.reschedule(id, delay) host.reschedule_timer(id, delay) end

local function format(message, ...)
	if select("#", ...) == 0 then return tostring(message) end
	local ok, text = pcall(s_format, message, ...)
	return ok and text or tostring(message)
end

local logger = {}
function logger.init(name)
	return function (level, message, ...) host.log(name, "*", level, format(message, ...)) end
end
logger.make_logger = function (name, level) return function (message, ...) host.log(name, "*", level, format(message, ...)) end end
-- Sinks are NetHost's (the `log` option): adding one here changes nothing.
function logger.add_level_sink() end
function logger.add_simple_sink() end
function logger.reset() end

local configmanager = {}
function configmanager.get(host_name, key)
	return host.get_option(host_name or "*", key)
end

-- Outgoing connections. addclient(addr, port, listeners, read_size, tls_ctx, typ, extra)
-- as in Prosody 0.12's server_epoll: the conn comes back at once, the listener hears
-- onconnect once connected or ondisconnect(conn, reason) if it never is. Unlike
-- server_epoll, addr may be a host name whatever typ says: NetHost resolves it off
-- the event loop and tries each address in turn. read_size is NetHost's (read_size
-- in network_settings). tls_ctx: true, or a table of ssl options (cafile, verify,
-- servername); extra.servername is the SNI name, as in Prosody.
local function addclient(addr, port, listeners, read_size, tls_ctx, typ, extra) -- luacheck: ignore 212/read_size
	if typ ~= nil and typ ~= "tcp" and typ ~= "tcp4" and typ ~= "tcp6" then
		return nil, "invalid socket type"
	end
	local servername = type(extra) == "table" and extra.servername or nil
	return host.addclient(addr, tonumber(port), listeners, tls_ctx, servername)
end

-- net.resolvers.basic: new(hostname, port, conn_type, extra), whose next(cb) gives
-- the one target (conn_type, hostname, port, extra) and then nothing. The name is
-- resolved by addclient, which tries every address it has (IPv6 and IPv4); its
-- failure reaches net.connect as that attempt's error.
local basic_methods = {}
local basic_mt = { __index = basic_methods }
function basic_methods:next(cb)
	local target = self.target
	self.target = nil
	if not target then return cb(nil) end
	return cb(target[1], target[2], target[3], target[4])
end
local basic = {}
function basic.new(hostname, port, conn_type, extra)
	conn_type = conn_type or "tcp"
	return setmetatable({
		hostname = hostname, port = port, conn_type = conn_type, extra = extra,
		target = { conn_type, hostname, port, extra },
	}, basic_mt)
end

-- net.connect's connect(target_resolver, listeners, options, data), with 0.12's
-- contract: each target the resolver gives is tried in turn; the first connection
-- made is handed to `listeners` (setlistener(listeners, data), then onconnect);
-- when none is left, listeners.onfail(data, last error).
local pending = {} -- conn -> attempt, while it connects
local pending_listener = {}
local function try_next(attempt)
	attempt.resolver:next(function (conn_type, ip, port, extra)
		if not conn_type then
			if attempt.listeners.onfail then
				attempt.listeners.onfail(attempt.data,
					attempt.last_error or attempt.resolver.last_error or "unable to resolve service")
			end
			return
		end
		local sslctx = extra and extra.sslctx or attempt.options.sslctx
		local conn, err = addclient(ip, port, pending_listener, nil, sslctx, conn_type, extra)
		if not conn then
			attempt.last_error = err or "unknown reason"
			return try_next(attempt)
		end
		pending[conn] = attempt
	end)
end
function pending_listener.onconnect(conn)
	local attempt = pending[conn]
	pending[conn] = nil
	if not attempt then conn:close() return end
	conn:setlistener(attempt.listeners, attempt.data)
	if attempt.listeners.onconnect then return attempt.listeners.onconnect(conn) end
end
function pending_listener.ondisconnect(conn, reason)
	local attempt = pending[conn]
	pending[conn] = nil
	if not attempt then return end
	attempt.last_error = reason or "unknown reason"
	try_next(attempt)
end
local function connect(target_resolver, listeners, options, data)
	if listeners == nil then error("net.connect: listeners expected", 2) end
	try_next({ resolver = target_resolver, listeners = listeners, options = options or {}, data = data })
end

-- link(from, to, read_size): what `from` receives is written to `to` as it comes,
-- and `from` stops reading while `to` is above its send buffer mark, as in
-- Prosody's server_epoll. NetHost does it without a Lua call per read; from's
-- listener keeps its other callbacks. read_size is NetHost's (network_settings).
local function link(from, to, read_size) -- luacheck: ignore 212/read_size
	host.link(from, to)
end

local provided = {
	["util.timer"] = timer,
	["util.logger"] = logger,
	["core.configmanager"] = configmanager,
	["net.server"] = { add_task = timer.add_task, timer = timer, addclient = addclient, link = link },
	["net.connect"] = { connect = connect },
	["net.resolvers.basic"] = basic,
}
for name, value in pairs(provided) do
	package.preload[name] = function () return value end
end
-- Made by a later chunk (metrics.lua), so looked up when required.
package.preload["core.statsmanager"] = function () return nethost.statsmanager end
package.preload["core.portmanager"] = function () return nethost.portmanager end

-- Prosody's core/ and net/ are the server itself (sessions, ports, its event
-- loop): NetHost's own versions above stand in for the parts it has, and loading
-- Prosody's files for the others would run a second server's internals beside
-- NetHost's. Without Prosody's library, a module that needs util/ likewise fails
-- with one line that says what is missing and how to get it, instead of Lua's
-- list of every file tried. Asked right after package.preload.
local function failing(message)
	return function () error(message, 0) end
end
table.insert(package.searchers, 2, function (name)
	if name:sub(1, 5) == "core." or name:sub(1, 4) == "net." then
		return failing(s_format(host.prosody_library_missing_prefix() .. "'%s', a part of Prosody's server that NetHost "
			.. "does not provide (it provides util.timer, util.logger, net.server's timers, addclient and link, "
			.. "net.connect, net.resolvers.basic, core.configmanager, core.statsmanager and core.portmanager's get_service and get_active_services)", name))
	end
	if not library and name:sub(1, 5) == "util." then
		return failing(s_format(host.prosody_library_missing_prefix() .. "'%s' from Prosody's library, which is not installed at %s: "
			.. "install it (apt-get install prosody) or set prosody_library_path", name, host.prosody_library_wanted()))
	end
	return nil
end)

-- The globals Prosody gives its modules, with Prosody's shape. NetHost hosts no
-- XMPP sessions: the session tables are there, and empty. A host's `events` is
-- looked up when first read: the module manager's chunk, which runs after this
-- one, sets up every events object as it is made.
local function with_events(table_, host_name)
	return setmetatable(table_, { __index = function (_, key)
		if key == "events" then return nethost.host_events(host_name) end
	end })
end
hosts = {}
for _, defined in ipairs(host.defined_hosts()) do
	hosts[defined.name] = with_events({ host = defined.name, type = defined.type, modules = {} }, defined.name)
end
prosody = with_events({
	version = host.version(),
	hosts = hosts,
	paths = { config = host.config_directory(), source = library },
	start_time = host.start_time(),
	platform = "posix",
	process_type = "nethost",
	full_sessions = {}, bare_sessions = {}, incoming_s2s = {},
	lock_globals = function () end, unlock_globals = function () end,
}, "*")

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

local provided = {
	["util.timer"] = timer,
	["util.logger"] = logger,
	["core.configmanager"] = configmanager,
	["net.server"] = { add_task = timer.add_task, timer = timer },
}
for name, value in pairs(provided) do
	package.preload[name] = function () return value end
end

-- Without Prosody's library, a module that needs it fails with one line that
-- says what is missing and how to get it, instead of Lua's list of every file
-- tried. Asked first, so that no other searcher's list is built.
local internal_prefixes = { "util.", "net.", "core." }
if not library then
	table.insert(package.searchers, 2, function (name)
		for _, prefix in ipairs(internal_prefixes) do
			if name:sub(1, #prefix) == prefix then
				return function ()
					local message = s_format(host.prosody_library_missing_prefix() .. "'%s' from Prosody's library, which is not installed at %s: "
						.. "install it (apt-get install prosody) or set prosody_library_path", name, host.prosody_library_wanted())
					error(message, 0)
				end
			end
		end
		return nil
	end)
end

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

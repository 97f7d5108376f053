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
			.. "does not provide (it provides util.timer, util.logger, net.server's timers, core.configmanager, core.statsmanager and core.portmanager's get_service)", name))
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

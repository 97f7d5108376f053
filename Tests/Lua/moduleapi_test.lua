-- The module API's Lua chunks on their own, run by plain lua5.4 with stand-ins
-- for the primitives NetHost's Swift side gives them (the `host` table): what a
-- module does through `module` and what the host is asked to do in return.
--
--   lua5.4 Tests/Lua/moduleapi_test.lua Sources/NetHostLua/ModuleAPI
--
-- Prints "N passed, M failed" and exits non-zero on a failure.

local dir = assert(arg[1], "usage: lua5.4 moduleapi_test.lua DIR-OF-THE-CHUNKS")

-- The host's side, recorded.
local logged, services, timers, options = {}, {}, {}, {}
local next_timer = 0
local host = {
	log = function (name, host_name, level, message) logged[#logged + 1] = level .. " " .. name .. ": " .. message end,
	get_option = function (host_name, name) return options[name] end,
	get_option_exact = function (host_name, name) return nil end,
	config_directory = function () return "/etc/nethost" end,
	host_type = function (host_name) return host_name == "*" and "global" or "local" end,
	provide_net = function (module, host_name, item) services[item.name] = module end,
	remove_service = function (name) services[name] = nil end,
	add_timer = function (module, host_name, delay, fn)
		next_timer = next_timer + 1
		timers[next_timer] = { delay = delay, fn = fn }
		return next_timer
	end,
	stop_timer = function (id) timers[id] = nil end,
	reschedule_timer = function (id, delay) timers[id].delay = delay end,
	wall_clock = function () return os.time() end,
	monotonic = function () return os.clock() end,
	-- Prosody's library and the globals (prosody.lua): no library here.
	prosody_library = function () return nil end,
	prosody_library_wanted = function () return "/nonexistent" end,
	prosody_library_missing_prefix = function () return "module needs " end,
	defined_hosts = function () return {} end,
	version = function () return "0.12 (NetHost test)" end,
	start_time = function () return os.time() end,
	-- Metrics (metrics.lua): recorded by handle.
	metric_handle = function () return 1 end,
	metric_update = function () end,
}
local loader
host.depends = function (name, host_name, dependency) return loader.environment(dependency, host_name) end

local shared = {}
for _, file in ipairs({ "events.lua", "moduleapi.lua", "options.lua", "prosody.lua", "metrics.lua", "modulemanager.lua" }) do
	local chunk = assert(loadfile(dir .. "/" .. file, "t"))
	loader = chunk(host, shared)
end
assert(type(loader) == "table" and type(loader.load) == "function", "the last chunk returns the loader")

-- Module files in a temporary folder.
local folder = os.tmpname()
os.remove(folder)
assert(os.execute("mkdir -p '" .. folder .. "'"))
local function module_file(name, source)
	local path = folder .. "/mod_" .. name .. ".lua"
	local f = assert(io.open(path, "w"))
	f:write(source)
	f:close()
	return path
end

local passed, failed = 0, 0
local function check(what, condition)
	if condition then passed = passed + 1 else failed = failed + 1; print("FAILED: " .. what) end
end

-- A module provides a service, hooks an event, starts a timer.
local path = module_file("greeter", [[
	module:provides("net", { name = "greeter", listener = {} })
	module:hook("probe", function (data) return "greeter answered " .. data.question end)
	local handle = module:add_timer(5, function () return 1 end)
	greeting = "hello from " .. module:get_name()
	function module.unload() module:log("info", "unloading") end
]])
check("load returns the module's host", loader.load("greeter", "*", path) == "*")
check("provides registers the net service with the host", services.greeter == "greeter")
check("the hook answers", loader.fire_event("probe", { question = "?" }) == "greeter answered ?")
check("the timer was handed to the host", timers[1] and timers[1].delay == 5)
check("the environment holds the module's globals", loader.environment("greeter", "*").greeting == "hello from greeter")

-- A second module depends on it and gets its environment.
local user = module_file("user", [[
	local greeter = module:depends("greeter")
	result = greeter.greeting
]])
loader.load("user", "*", user)
check("depends returns the dependency's environment", loader.environment("user", "*").result == "hello from greeter")

-- Unloading removes everything the module registered.
check("unload reports the module was loaded", loader.unload("greeter", "*") == true)
check("module.unload ran", logged[#logged] == "info greeter: unloading")
check("the hook is gone", loader.fire_event("probe", { question = "?" }) == nil)
check("the timer is stopped", timers[1] == nil)
check("the service is removed", services.greeter == nil)

-- Options: typed look-ups with defaults, a logged error for the wrong type.
options.count = "12"
options.flag = "maybe"
local reader = module_file("reader", [[
	count = module:get_option_number("count", 1)
	flag = module:get_option_boolean("flag", true)
	fallback = module:get_option_string("absent", "default")
]])
loader.load("reader", "*", reader)
local env = loader.environment("reader", "*")
check("a number given as a string is read as one", env.count == 12)
check("a boolean that is not one is nil, as in Prosody 0.12", env.flag == nil)
check("the wrong type is logged", logged[#logged]:match("^error reader: .*flag") ~= nil)
check("an absent option gives the default", env.fallback == "default")

-- A module whose file raises an error is not loaded.
local broken = module_file("broken", "error('refusing')")
local ok, err = pcall(loader.load, "broken", "*", broken)
check("a failing module's error reaches the caller", not ok and tostring(err):match("refusing") ~= nil)

os.execute("rm -rf '" .. folder .. "'")
print(("%d passed, %d failed"):format(passed, failed))
os.exit(failed == 0 and 0 or 1)

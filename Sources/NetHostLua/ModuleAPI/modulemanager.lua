-- The Lua half of the module manager, following Prosody's
-- `core/modulemanager.lua`: the map of loaded modules by host, each step of
-- loading, unloading and reloading a module, the add_host instances of global
-- modules, lifecycle events, and the port manager's handling of net-provider
-- items. The last of the module API's Lua chunks; it returns the functions the
-- Swift module manager calls (`loader`). Which module loads where, and in what
-- order, is the Swift side's to decide (`ModuleManager`).
local host, nethost = ...
local api, host_events = nethost.api, nethost.host_events
local type, pairs, ipairs, tostring = type, pairs, ipairs, tostring
local setmetatable, rawget, pcall, xpcall, error, loadfile = setmetatable, rawget, pcall, xpcall, error, loadfile
local t_insert, t_sort = table.insert, table.sort
local traceback = debug.traceback

-- host -> name -> module object; "*" holds the global modules.
local modulemap = { ["*"] = {} }

local function modules_on(host_name)
	local map = modulemap[host_name]
	if not map then map = {}; modulemap[host_name] = map end
	return map
end

local function get_module(name, host_name)
	local map = modulemap[host_name]
	return map and map[name]
end

local function has_method(module, method)
	return type(rawget(module, method)) == "function"
end

local function call_method(module, method, ...)
	return xpcall(rawget(module, method), traceback, ...)
end

-- Every item of KEY that the modules on a host added, in the order of their names.
function nethost.get_items(key, host_name)
	local result = {}
	local map = modulemap[host_name]
	if not map then return result end
	local names = {}
	for name in pairs(map) do names[#names + 1] = name end
	t_sort(names)
	for _, name in ipairs(names) do
		for _, value in ipairs(map[name].items[key] or {}) do t_insert(result, value) end
	end
	return result
end

-- The port manager's part, as Prosody's core/portmanager.lua does it: a
-- net-provider item is a network service; removing the item removes it. Net
-- services are process-wide and named, so a module on any host can provide one
-- and a second provider of a name is an error for the module that tries.
local service_owner = setmetatable({}, { __mode = "k" })  -- item -> the host it was registered for
-- The services by name, each with the items that provide it (one here), as
-- Prosody's portmanager lists them.
local registered = {}
t_insert(nethost.on_new_events, function (_, events)
	events.add_handler("item-added/net-provider", function (event)
		local source = event.source
		host.provide_net(source.name, source.host, event.item)
		service_owner[event.item] = source.host
		registered[event.item.name] = { event.item }
		host_events("*").fire_event("service-added", { name = event.item.name, service = event.item })
	end)
	events.add_handler("item-removed/net-provider", function (event)
		local owner = service_owner[event.item]
		if owner == nil then return end
		service_owner[event.item] = nil
		if registered[event.item.name] and registered[event.item.name][1] == event.item then registered[event.item.name] = nil end
		host.remove_service(event.item.name, event.source.name, owner)
		host_events("*").fire_event("service-removed", { name = event.item.name, service = event.item })
	end)
end)

-- `require "core.portmanager"`: what modules ask of Prosody's port manager.
-- get_active_services() is Prosody's shape: a util.multitable (from Prosody's own
-- library) of service name -> interface -> port -> { service = item }, made
-- from the ports NetHost has open when asked.
nethost.portmanager = {
	get_service = function (name) return (registered[name] or {})[1] end,
	get_registered_services = function () return registered end,
	get_active_services = function ()
		local active = require "util.multitable".new()
		for name, items in pairs(registered) do
			for _, address in ipairs(host.listening_addresses(name)) do
				active:add(name, address[1], address[2], { service = items[1] })
			end
		end
		return active
	end,
}

local loader = {}

-- Runs a module file on a host in an environment of its own. `state` is set
-- when this load is a reload: module.reloading is true and module.saved_state
-- holds what the old module's save() returned, while the file and module.load
-- run. Returns the host the module ended up on: "*" if it called set_global.
-- On an error the host calls loader.unload(name, host, true), with a budget of
-- its own, since the error may be the budget running out.
function loader.load(name, host_name, path, state)
	local map = modules_on(host_name)
	if map[name] then error("module '" .. name .. "' is already loaded on " .. host_name, 0) end
	local module = setmetatable({
		name = name, host = host_name, path = path,
		timers = {}, items = {}, event_handlers = {},
		reloading = state ~= nil, saved_state = state ~= true and state or nil,
	}, api)
	module.environment = setmetatable({ module = module, _M = module }, { __index = _G })
	local chunk, err = loadfile(path, "t", module.environment)
	if not chunk then error(err, 0) end
	-- In the map before the file runs, so that a module it depends on can depend on it.
	map[name] = module
	local ok, run_err = xpcall(chunk, traceback)
	if ok and has_method(module, "load") then
		ok, run_err = call_method(module, "load")
	end
	module.reloading, module.saved_state = nil, nil
	if not ok then error(run_err, 0) end
	-- Loaded on the global host, a module is global, as Prosody makes it.
	if host_name == "*" and module.host == "*" and not module.global then module:set_global() end
	if module.host == "*" and host_name ~= "*" then
		if not module.global then
			host.log(name, host_name, "warn", "Setting module.host = '*' is deprecated, call module:set_global() instead")
			module:set_global()
		end
		map[name] = nil
		modules_on("*")[name] = module
	end
	-- As Prosody: "Loaded", unless the module set a status of its own while loading.
	module:set_status("core", "Loaded", false)
	return module.host
end

-- Prosody's per-host instance of a global module: a module object for the
-- host, whose methods and environment fall back to the global module's,
-- handed to the global module's add_host. Returns false if it has no add_host.
function loader.add_host(name, host_name)
	local global = get_module(name, "*")
	if not global then error("module '" .. name .. "' is not loaded globally", 0) end
	if not has_method(global, "add_host") then return false end
	local map = modules_on(host_name)
	if map[name] then return true end
	local module = setmetatable({
		global = false, host = host_name,
		timers = {}, items = {}, event_handlers = {},
	}, { __index = global })
	module.environment = setmetatable({ module = module }, { __index = global.environment })
	map[name] = module
	local ok, result, err = call_method(global, "add_host", module)
	if not ok then error(result, 0) end
	if result == false then error(tostring(err or "add_host returned false"), 0) end
	return true
end

-- Calls the module's unload (unless its load failed) and removes what it
-- registered: hooks, timers, items (each firing item-removed/KIND).
function loader.unload(name, host_name, failed)
	local module = get_module(name, host_name)
	if not module then return false end
	if not failed and has_method(module, "unload") then
		local ok, err = call_method(module, "unload")
		if not ok then host.log(name, host_name, "error", "error in module.unload: " .. tostring(err)) end
	end
	for _, h in ipairs(module.event_handlers) do
		h.object.remove_handler(h.event, h.handler)
	end
	module.event_handlers = {}
	for id in pairs(module.timers) do host.stop_timer(id) end
	local events = host_events(host_name)
	for key, list in pairs(module.items) do
		for i = #list, 1, -1 do
			local value = list[i]
			list[i] = nil
			local ok, err = pcall(events.fire_event, "item-removed/" .. key, { source = module, item = value })
			if not ok then host.log(name, host_name, "error", "error in a handler of item-removed/" .. key .. ": " .. tostring(err)) end
		end
	end
	module.loaded = false
	modules_on(host_name)[name] = nil
	return true
end

-- A reload, in Prosody's order. First prepare_reload: the new file must
-- compile, and module.save() must not fail (unless force_module_reload is set),
-- or nothing changes; then the old module is marked reloading. The host then
-- unloads the module's add_host instances and calls finish_reload: unload the
-- old module, load the new one with the saved state, call restore(saved or {}).
local pending = {}  -- "host/name" -> { state = ... }

function loader.prepare_reload(name, host_name)
	local module = get_module(name, host_name)
	if not module then error("module '" .. name .. "' is not loaded", 0) end
	local chunk, err = loadfile(module.path, "t", {})
	if not chunk then error(err, 0) end
	local saved
	if has_method(module, "save") then
		local ok, result = call_method(module, "save")
		if ok then
			saved = result
		elseif host.get_option(host_name, "force_module_reload") then
			host.log(name, host_name, "warn", "error in module.save, reloading anyway (force_module_reload): " .. tostring(result))
		else
			error("module.save failed, so the module was not reloaded (force_module_reload = true reloads anyway): " .. tostring(result), 0)
		end
	end
	module.reloading = true
	pending[host_name .. "/" .. name] = { state = saved }
end

function loader.finish_reload(name, host_name)
	local old = get_module(name, host_name)
	if not old then error("module '" .. name .. "' is not loaded", 0) end
	local key = host_name .. "/" .. name
	local saved = pending[key] and pending[key].state
	pending[key] = nil
	loader.unload(name, host_name)
	local where = loader.load(name, host_name, old.path, saved or true)
	local new = get_module(name, where)
	if new and has_method(new, "restore") then
		local ok, err = call_method(new, "restore", saved or {})
		if not ok then host.log(name, where, "warn", "error in module.restore: " .. tostring(err)) end
	end
	return where
end

-- What module:depends returns: the module's environment.
function loader.environment(name, host_name)
	local module = get_module(name, host_name)
	if not module then error("module '" .. name .. "' is not loaded on " .. host_name, 0) end
	return module.environment
end

-- module-loaded, module-unloaded, module-reloaded, on the events of the host
-- named; while module-reloaded runs, the new module's `reloading` is true.
function loader.fire_lifecycle(event, name, host_name)
	local module = event == "module-reloaded" and get_module(name, host_name) or nil
	if module then module.reloading = true end
	local ok, err = pcall(host_events(host_name).fire_event, event, { module = name, host = host_name })
	if module then module.reloading = nil end
	if not ok then error(err, 0) end
end

-- An event on a host's events; the server's own (server-started, server-stopping,
-- ...) are on the global events, "*".
function loader.fire_event(name, data, host_name)
	return host_events(host_name or "*").fire_event(name, data)
end

return loader

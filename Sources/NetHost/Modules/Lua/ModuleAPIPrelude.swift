/// The `module` API given to every Lua module, written in Lua as Prosody's own
/// `core/moduleapi.lua` is. It runs once per Lua state with the host's
/// primitives (`host`) as its argument and returns the loader's functions.
/// Everything a module registers is recorded on its `module` object so that
/// unloading can undo it.
enum ModuleAPIPrelude {
    static let source = #"""
local host = ...
local type, pairs, ipairs, select, tostring, tonumber = type, pairs, ipairs, select, tostring, tonumber
local setmetatable, rawget, pcall, error, loadfile = setmetatable, rawget, pcall, error, loadfile
local t_insert, t_remove, t_sort, t_concat = table.insert, table.remove, table.sort, table.concat

local loaded = {}        -- "host/name" -> module object
local shared_data = {}   -- path -> table, for module:shared()

-- Events: handlers sorted by priority, highest first; equal priorities run in
-- the order they were added. A handler that returns non-nil stops the event.
local events = { handlers = {} }

function events.add(name, fn, priority, owner)
	local list = events.handlers[name]
	if not list then list = {}; events.handlers[name] = list end
	t_insert(list, { fn = fn, priority = priority or 0, owner = owner, seq = #list + 1 })
	t_sort(list, function (a, b)
		if a.priority ~= b.priority then return a.priority > b.priority end
		return a.seq < b.seq
	end)
end

-- Removes the handlers that match; a nil name, function or owner matches any.
function events.remove(name, fn, owner)
	local lists = events.handlers
	if name ~= nil then lists = { [name] = events.handlers[name] } end
	for event, list in pairs(lists) do
		for i = #list, 1, -1 do
			local h = list[i]
			if (fn == nil or h.fn == fn) and (owner == nil or h.owner == owner) then t_remove(list, i) end
		end
		if #list == 0 then events.handlers[event] = nil end
	end
end

function events.fire(name, ...)
	local list = events.handlers[name]
	if not list then return nil end
	for _, h in ipairs({ table.unpack(list) }) do
		local result = h.fn(...)
		if result ~= nil then return result end
	end
	return nil
end

-- Sets, as util.set offers them, for get_option_set.
local set_mt = {}
set_mt.__index = set_mt
local function new_set(list)
	local s = setmetatable({ _items = {} }, set_mt)
	for _, v in ipairs(list or {}) do s._items[v] = true end
	return s
end
function set_mt:items() return pairs(self._items) end
function set_mt:contains(v) return self._items[v] == true end
function set_mt:empty() return next(self._items) == nil end
function set_mt:add(v) self._items[v] = true end
function set_mt:remove(v) self._items[v] = nil end
function set_mt:__len() local n = 0 for _ in pairs(self._items) do n = n + 1 end return n end
function set_mt:__tostring()
	local list = {}
	for v in pairs(self._items) do list[#list + 1] = tostring(v) end
	t_sort(list)
	return t_concat(list, ", ")
end

local api = {}
api.__index = api

function api:get_name() return self.name end
function api:get_host() return self.host end
function api:get_host_type() return self.host == "*" and "global" or "local" end
function api:get_directory() return self.path and self.path:match("^(.*)/[^/]*$") or "." end
function api:set_global() self.global = true end

local levels = { debug = true, info = true, warn = true, error = true }
function api:log(level, message, ...)
	if not levels[level] then level = "info" end
	if select("#", ...) > 0 then
		local ok, formatted = pcall(string.format, message, ...)
		if ok then message = formatted
		else message = tostring(message) .. " (bad log format: " .. tostring(formatted) .. ")" end
	end
	host.log(self.name, self.host, level, tostring(message))
end

function api:get_option(name, default)
	local value = host.get_option(self.host, name)
	if value == nil then return default end
	return value
end

local function wrong_type(self, name, expected, value, default)
	self:log("error", "Config option '%s' should be %s, got %s; using the default", name, expected, type(value))
	return default
end

function api:get_option_string(name, default)
	local value = self:get_option(name)
	if value == nil then return default end
	if type(value) == "table" and #value == 1 and type(value[1]) == "string" then value = value[1] end
	if type(value) == "number" then return tostring(value) end
	if type(value) ~= "string" then return wrong_type(self, name, "a string", value, default) end
	return value
end

function api:get_option_number(name, default, min, max)
	local value = self:get_option(name)
	if value == nil then return default end
	local number = tonumber(value)
	if number == nil then return wrong_type(self, name, "a number", value, default) end
	if (min and number < min) or (max and number > max) then
		self:log("error", "Config option '%s' should be between %s and %s, got %s; using the default",
			name, tostring(min or "-inf"), tostring(max or "inf"), tostring(number))
		return default
	end
	return number
end

function api:get_option_integer(name, default, min, max)
	local number = self:get_option_number(name, default, min, max)
	if number == nil then return nil end
	if math.type(number) == "float" then
		if number ~= math.floor(number) then
			return wrong_type(self, name, "an integer", number, default)
		end
		return math.tointeger(number)
	end
	return number
end

function api:get_option_boolean(name, default)
	local value = self:get_option(name)
	if value == nil then return default end
	if value == true or value == "yes" or value == "true" or value == 1 then return true end
	if value == false or value == "no" or value == "false" or value == 0 then return false end
	return wrong_type(self, name, "a boolean", value, default)
end

function api:get_option_array(name, default)
	local value = self:get_option(name)
	if value == nil then return default end
	if type(value) ~= "table" then return { value } end
	local copy = {}
	for i, v in ipairs(value) do copy[i] = v end
	return copy
end

function api:get_option_set(name, default)
	local value = self:get_option(name)
	if value == nil then value = default end
	if value == nil then return nil end
	if type(value) ~= "table" then return new_set({ value }) end
	local s = new_set(value)
	for k, v in pairs(value) do
		if type(k) == "string" and v == true then s:add(k) end
	end
	return s
end

function api:get_option_inherited_set(name, default)
	local global = host.get_option("*", name)
	local mine = self.host ~= "*" and host.get_option_exact(self.host, name) or nil
	local s = new_set()
	for _, source in ipairs({ global or default or {}, mine or {} }) do
		if type(source) == "table" then
			for _, v in ipairs(source) do s:add(v) end
		else
			s:add(source)
		end
	end
	return s
end

function api:get_option_enum(name, default, ...)
	local value = self:get_option(name, default)
	for i = 1, select("#", ...) do
		if value == select(i, ...) then return value end
	end
	if value == default then return default end
	self:log("error", "Config option '%s' should be one of the allowed values, got %s; using the default", name, tostring(value))
	return default
end

local period_units = { s = 1, sec = 1, second = 1, seconds = 1, m = 60, min = 60, minute = 60, minutes = 60,
	h = 3600, hour = 3600, hours = 3600, d = 86400, day = 86400, days = 86400, w = 604800, week = 604800, weeks = 604800 }
function api:get_option_period(name, default)
	local value = self:get_option(name, default)
	if type(value) == "number" then return value end
	if type(value) == "string" then
		local n, unit = value:match("^%s*(%d+%.?%d*)%s*(%a*)%s*$")
		if n and (unit == "" or period_units[unit]) then return tonumber(n) * (period_units[unit] or 1) end
	end
	if value == nil then return nil end
	return wrong_type(self, name, "a time period", value, default)
end

function api:get_option_path(name, default, parent)
	local value = self:get_option_string(name, default)
	if value == nil then return nil end
	if value:sub(1, 1) == "/" then return value end
	return (parent or host.config_directory()) .. "/" .. value
end

function api:provides(kind, item)
	item = item or {}
	if kind == "net" then
		item.name = item.name or self.name
		host.provide_net(self.name, self.host, item)
		self.net_services[#self.net_services + 1] = item.name
	else
		self.items[kind] = self.items[kind] or {}
		t_insert(self.items[kind], item)
		events.fire("item-added/" .. kind, { source = self, item = item })
	end
end

function api:hook(name, fn, priority)
	events.add(name, fn, priority, self)
end
api.hook_global = api.hook
api.hook_object_event = function (self, object, name, fn, priority) return object.add_handler and object.add_handler(name, fn, priority) end

function api:unhook(name, fn)
	events.remove(name, fn, self)
end

function api:fire_event(name, data)
	return events.fire(name, data)
end

function api:depends(name)
	return host.depends(self.name, self.host, name)
end

function api:add_timer(delay, fn)
	local id = host.add_timer(self.name, self.host, delay, fn)
	self.timers[id] = true
	local module = self
	return { id = id, stop = function () host.stop_timer(id); module.timers[id] = nil end }
end

function api:shared(path)
	if path:sub(1, 1) ~= "/" then path = "/" .. self.host .. "/" .. self.name .. "/" .. path end
	local data = shared_data[path]
	if not data then data = {}; shared_data[path] = data end
	return data
end

function api:require(lib)
	local dir = self:get_directory()
	for _, candidate in ipairs({ dir .. "/" .. lib .. ".lib.lua", dir .. "/" .. lib .. ".lua" }) do
		local chunk, err = loadfile(candidate, "t", self.environment)
		if chunk then return chunk() end
		-- A file that is there but does not load (bad syntax, bytecode) is the error, not "missing".
		if not err:find("^cannot open ") then error(err, 2) end
	end
	error("module '" .. self.name .. "' requires library '" .. lib .. "', which is not beside it in " .. dir, 2)
end

function api:context(host_name)
	local other = setmetatable({}, { __index = self })
	other.host = host_name
	return other
end

local loader = {}

-- Loads a module file into its own environment. On an error the host calls
-- loader.unload(name, host, true) with a budget of its own, since the error may be
-- the budget running out, which would stop any clean-up attempted here.
function loader.load(name, host_name, path)
	local key = host_name .. "/" .. name
	if loaded[key] then return loaded[key] end
	local module = setmetatable({
		name = name, host = host_name, path = path,
		timers = {}, items = {}, net_services = {},
	}, api)
	local environment = setmetatable({ module = module, _M = module }, { __index = _G })
	module.environment = environment
	local chunk, err = loadfile(path, "t", environment)
	if not chunk then error(err, 0) end
	loaded[key] = module
	local ok, run_err = xpcall(chunk, debug.traceback)
	if ok and type(rawget(module, "load")) == "function" then
		ok, run_err = xpcall(module.load, debug.traceback)
	end
	if not ok then error(run_err, 0) end
	return module
end

function loader.unload(name, host_name, failed)
	local key = host_name .. "/" .. name
	local module = loaded[key]
	if not module then return false end
	if not failed and type(rawget(module, "unload")) == "function" then
		local ok, err = xpcall(module.unload, debug.traceback)
		if not ok then host.log(name, host_name, "error", "error in module.unload: " .. tostring(err)) end
	end
	events.remove(nil, nil, module)
	for id in pairs(module.timers) do host.stop_timer(id) end
	host.remove_services(name, host_name)
	loaded[key] = nil
	return true
end

-- Prosody's module reload: the old module may hand state to the new one with
-- module.save() and module.restore(state). Connections keep the listener they
-- have (the old code); new connections get the new one.
function loader.reload(name, host_name)
	local old = loaded[host_name .. "/" .. name]
	if not old then error("module '" .. name .. "' is not loaded", 0) end
	local saved
	if type(rawget(old, "save")) == "function" then
		local ok, result = xpcall(old.save, debug.traceback)
		if ok then saved = result
		else host.log(name, host_name, "error", "error in module.save: " .. tostring(result)) end
	end
	loader.unload(name, host_name)
	local new = loader.load(name, host_name, old.path)
	if saved ~= nil and type(rawget(new, "restore")) == "function" then
		local ok, err = xpcall(new.restore, debug.traceback, saved)
		if not ok then host.log(name, host_name, "error", "error in module.restore: " .. tostring(err)) end
	end
	return new
end

function loader.is_loaded(name, host_name)
	return loaded[host_name .. "/" .. name] ~= nil
end

function loader.fire_event(name, data)
	return events.fire(name, data)
end

return loader
"""#
}

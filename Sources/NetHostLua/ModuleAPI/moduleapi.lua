-- The `module` API given to every Lua module, written in Lua as Prosody's own
-- `core/moduleapi.lua` is, and following it: events, items, timers, shared
-- tables, dependencies. A Lua chunk run once per Lua state, after the events
-- chunk, with the host's primitives (`host`) and the table the chunks share
-- (`nethost`); it sets `nethost.api`. Everything a module registers is recorded
-- on its `module` object so that unloading can undo it.
local host, nethost = ...
local host_events = nethost.host_events
local type, pairs, ipairs, select, tostring = type, pairs, ipairs, select, tostring
local setmetatable, error, loadfile, pcall, rawset = setmetatable, error, loadfile, pcall, rawset
local t_insert, t_remove, t_concat = table.insert, table.remove, table.concat
local t_pack, t_unpack = table.pack, table.unpack

local api = {}
api.__index = api
nethost.api = api

function api:get_name() return self.name end
function api:get_host() return self.host end
function api:get_host_type()
	if self.host == "*" then return "global" end
	return host.host_type(self.host)
end
function api:get_directory() return self.path and self.path:match("^(.*)/[^/]*$") or "." end

function api:set_global()
	self.host = "*"
	self.global = true
	-- As Prosody, which gives the module a new logger here: a `log` the module set
	-- on itself is replaced by the module API's.
	rawset(self, "log", nil)
end

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

-- Events. module:hook uses the events of the module's host ("*" for a global
-- module), hook_global the global ones, as in Prosody. Each hook is recorded
-- so that unloading removes it.

function api:hook_object_event(object, event, handler, priority)
	t_insert(self.event_handlers, { object = object, event = event, handler = handler })
	return object.add_handler(event, handler, priority)
end

function api:unhook_object_event(object, event, handler)
	local list = self.event_handlers
	for i = #list, 1, -1 do
		local h = list[i]
		if h.object == object and h.event == event and h.handler == handler then t_remove(list, i) end
	end
	return object.remove_handler(event, handler)
end

function api:hook(event, handler, priority)
	return self:hook_object_event(host_events(self.host), event, handler, priority)
end

function api:hook_global(event, handler, priority)
	return self:hook_object_event(host_events("*"), event, handler, priority)
end

function api:unhook(event, handler)
	return self:unhook_object_event(host_events(self.host), event, handler)
end

function api:fire_event(...)
	return host_events(self.host).fire_event(...)
end

-- Items: what modules offer each other by kind. Adding one fires
-- item-added/KIND on the module's host, removing it (or unloading the module)
-- item-removed/KIND.

local NULL = {}

function api:add_item(key, value)
	self.items[key] = self.items[key] or {}
	t_insert(self.items[key], value)
	self:fire_event("item-added/" .. key, { source = self, item = value })
end

function api:remove_item(key, value)
	local list = self.items[key] or NULL
	for i = #list, 1, -1 do
		if list[i] == value then
			t_remove(list, i)
			self:fire_event("item-removed/" .. key, { source = self, item = value })
			return value
		end
	end
end

function api:get_host_items(key)
	return nethost.get_items(key, self.host)
end

function api:handle_items(item_type, added_cb, removed_cb, existing)
	self:hook("item-added/" .. item_type, added_cb)
	self:hook("item-removed/" .. item_type, removed_cb)
	if existing ~= false then
		for _, item in ipairs(self:get_host_items(item_type)) do
			added_cb({ item = item })
		end
	end
end

-- provides(KIND, item) adds item to KIND-provider. For "net" the port manager
-- (see nethost.modulemanager) registers the service. The item's name defaults
-- to the module's name less a "KIND_" prefix ("net_echo" provides "echo").
function api:provides(name, item)
	if not item then
		item = {}
		for k, v in pairs(self.environment) do
			if k ~= "module" then item[k] = v end
		end
	end
	if not item.name then
		local item_name = self.name
		if item_name:find((name:gsub("%-", "_")) .. "_", 1, true) == 1 then
			item_name = item_name:sub(#name + 2)
		end
		item.name = item_name
	end
	item._provided_by = self.name
	self:add_item(name .. "-provider", item)
end

-- Dependencies: the module's environment, whose globals are what it offers
-- other modules. A module that modules_disabled names cannot be a dependency.
function api:depends(name)
	if self:get_option_inherited_set("modules_disabled", {}):contains(name) then
		error("Dependency on disabled module mod_" .. tostring(name), 2)
	end
	self.dependencies = self.dependencies or {}
	local environment = host.depends(self.name, self.host, name)
	self.dependencies[name] = true
	return environment
end

-- Timers: add_timer(delay, fn, ...) calls fn(now, ...) after delay seconds,
-- now being the wall-clock time; a number fn returns re-arms it. The handle has
-- stop() (also disarm()) and reschedule(delay), called with ":" or ".".
local timer_methods = {}
local timer_mt = { __index = timer_methods }

function timer_methods:stop()
	host.stop_timer(self.id)
	self.module_env.timers[self.id] = nil
end
timer_methods.disarm = timer_methods.stop

function timer_methods:reschedule(delay)
	host.reschedule_timer(self.id, delay)
end

function api:add_timer(delay, callback, ...)
	if type(callback) ~= "function" then
		error("bad argument #2 to 'add_timer' (function expected, got " .. type(callback) .. ")", 2)
	end
	local t = t_pack(...)
	t.module_env = self
	t.callback = callback
	t.id = host.add_timer(self.name, self.host, delay, function (now)
		return callback(now, t_unpack(t, 1, t.n))
	end)
	self.timers[t.id] = true
	-- Also callable as handle.stop(): NetHost's handles always allowed it.
	t.stop = function () return timer_methods.stop(t) end
	t.disarm = t.stop
	t.reschedule = function (first, second)
		if first == t then return timer_methods.reschedule(t, second) end
		return timer_methods.reschedule(t, first)
	end
	return setmetatable(t, timer_mt)
end

-- Shared tables, by path. A path not starting with "/" is completed with the
-- module's host and name: "x" is /HOST/NAME/x, "other/x" is /HOST/other/x (a table
-- of module "other"), "a/b/c" is /a/b/c. A table lives while a module holds it;
-- one whose path ends in "-cache" has weak keys and values.
local shared_data = setmetatable({}, { __mode = "v" })

local function shared_table(module, path)
	if path:sub(1, 1) ~= "/" then
		local defaults = { module.host, module.name }
		local slashes = select(2, path:gsub("/", "%1"))
		path = (slashes < #defaults and "/" or "")
			.. t_concat(defaults, "/", 1, #defaults - slashes) .. "/" .. path
	end
	local shared = shared_data[path]
	if not shared then
		shared = {}
		if path:match("%-cache$") then setmetatable(shared, { __mode = "kv" }) end
		shared_data[path] = shared
	end
	return shared, path
end

function api:shared(path)
	if type(path) ~= "string" then
		error("bad argument #1 to 'shared' (string expected, got " .. type(path) .. ")", 2)
	end
	if not self.shared_data then self.shared_data = {} end
	local shared, full_path = shared_table(self, path)
	self.shared_data[full_path] = shared
	return shared
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

-- The module as seen from another host: its options and events are that host's.
function api:context(host_name)
	return setmetatable({ host = host_name or "*", global = "*" == host_name }, { __index = self, __newindex = self })
end

-- XMPP service discovery's items, kept as Prosody keeps them (NetHost answers no
-- disco queries, but modules add them while loading and read them back).
function api:add_feature(xmlns) self:add_item("feature", xmlns) end
function api:add_identity(category, identity_type, name)
	self:add_item("identity", { category = category, type = identity_type, name = name })
end
function api:add_extension(data) self:add_item("extension", data) end

-- A stanza handler, hooked as Prosody hooks it ("stanza/XMLNS:NAME"). NetHost routes
-- no stanzas, so it runs only when a module fires that event itself.
function api:hook_tag(xmlns, name, handler, priority)
	if not handler and type(name) == "function" then
		xmlns, name, handler, priority = nil, xmlns, name, handler
	elseif not (handler and name) then
		self:log("warn", "Error: Insufficient parameters to module:hook_tag()")
		return
	end
	return self:hook("stanza/" .. (xmlns and (xmlns .. ":") or "") .. name,
		function (data) return handler(data.origin, data.stanza, data) end, priority)
end

-- Wrappers around an events object's handlers (util.events' add_wrapper).
function api:wrap_object_event(events_object, event, handler)
	return self:hook_object_event(assert(events_object.wrappers, "no wrappers"), event, handler)
end
function api:wrap_event(event, handler)
	return self:wrap_object_event(host_events(self.host), event, handler)
end
-- As Prosody 0.12 has it: a handler of the global events, not a wrapper.
function api:wrap_global(event, handler)
	return self:hook_object_event(host_events("*"), event, handler)
end

-- A module's status, as Prosody's admin shell shows it.
local status_priorities = { error = 3, warn = 2, info = 1, core = 0 }
function api:set_status(status_type, status_message, override)
	local priority = status_priorities[status_type]
	if not priority then
		self:log("error", "set_status: Invalid status type '%s', assuming 'info'", tostring(status_type))
		status_type, priority = "info", status_priorities.info
	end
	local current = status_priorities[self.status_type] or 0
	-- An error stays until another error replaces it, unless told otherwise.
	if (current >= status_priorities.error and priority < current and override ~= true)
		or (override == false and current > priority) then
		self:log("debug", "moduleapi: ignoring status [prio %d override %s]: %s", priority, tostring(override), status_message)
		return
	end
	self.status_type, self.status_message, self.status_time = status_type, status_message, host.wall_clock()
	self:fire_event("module-status/updated", { name = self.name })
end
function api:get_status() return self.status_type, self.status_message, self.status_time end
function api:log_status(level, message, ...)
	local ok, text = pcall(string.format, message, ...)
	self:set_status(level, ok and text or tostring(message))
	return self:log(level, message, ...)
end

-- A file beside the module (or at an absolute path), opened with io.open.
function api:load_resource(path, mode)
	if path:sub(1, 1) ~= "/" then path = self:get_directory() .. "/" .. path:gsub("^%./+", "") end
	return io.open(path, mode)
end

-- Periodic tasks (Prosody's mod_cron, which NetHost does not need): a task runs
-- every period, first one period after it is added, as task:run(now).
local periods = { hourly = 3600, daily = 86400, weekly = 604800 }
function api:cron(task)
	local period = periods[task.when]
	if not period then error("module:cron: 'when' must be hourly, daily or weekly, got " .. tostring(task.when), 2) end
	self:add_item("task", task)
	self:add_timer(period, function (now)
		local ok, err = pcall(task.run, task, now)
		if not ok then self:log("error", "task %s failed: %s", tostring(task.name or "?"), tostring(err)) end
		return period
	end)
end
for when in pairs(periods) do
	api[when] = function (self, name, fn)
		if type(name) == "function" then fn, name = name, nil end
		return self:cron({ name = name, when = when, run = fn })
	end
end

-- XMPP routing and storage are Prosody's, not NetHost's: a module that needs them
-- fails with a line that says so, not with a call to nil.
local function not_hosted(what)
	return function () error("module:" .. what .. ": NetHost hosts network services, not XMPP sessions or storage", 2) end
end
api.send = not_hosted("send")
api.send_iq = not_hosted("send_iq")
api.broadcast = not_hosted("broadcast")
api.open_store = not_hosted("open_store")

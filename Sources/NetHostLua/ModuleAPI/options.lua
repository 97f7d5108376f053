-- The `module:get_option*` family, as Prosody's `core/moduleapi.lua` defines
-- it: typed look-ups with defaults, a logged error for a value of the wrong
-- type. A Lua chunk of the module API that adds its methods to `nethost.api`.
local host, nethost = ...
local api = nethost.api
local type, pairs, ipairs, select, tostring, tonumber, next = type, pairs, ipairs, select, tostring, tonumber, next
local setmetatable = setmetatable
local t_sort, t_concat = table.sort, table.concat

-- Sets as Prosody's util.set makes them, for get_option_set: the methods and the
-- iteration (`for item in set do`) modules use.
local set_mt = { __name = "set" }
set_mt.__index = set_mt
function set_mt.__call(set, _, key) return next(set._items, key) end
local function new_set(list)
	local s = setmetatable({ _items = {} }, set_mt)
	s:add_list(list)
	return s
end
function set_mt:items() return next, self._items end
function set_mt:contains(v) return self._items[v] end
function set_mt:empty() return next(self._items) == nil end
function set_mt:add(v) self._items[v] = true end
function set_mt:remove(v) self._items[v] = nil end
function set_mt:add_list(list)
	for _, v in ipairs(list or {}) do self._items[v] = true end
end
function set_mt:include(other) for v in other do self._items[v] = true end end
function set_mt:exclude(other) for v in other do self._items[v] = nil end end
function set_mt:contains_set(other)
	for v in other do
		if not self._items[v] then return false end
	end
	return true
end
function set_mt:__len() local n = 0 for _ in pairs(self._items) do n = n + 1 end return n end
function set_mt:__tostring()
	local list = {}
	for v in pairs(self._items) do list[#list + 1] = tostring(v) end
	t_sort(list)
	return t_concat(list, ", ")
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

-- The getters below follow Prosody 0.12's core/moduleapi.lua in what they return
-- and when they log: a module written for Prosody reads the same values here
-- (ProsodyOptionsDifferentialTests runs the same getters on both).

-- A list where one value is expected: its first item, with a logged error when
-- the list has more than one (the value then in use may not be the one meant).
function api:get_option_scalar(name, default)
	local value = self:get_option(name, default)
	if type(value) == "table" then
		if #value > 1 then
			self:log("error", "Config option '%s' does not take a list, using just the first item", name)
		end
		value = value[1]
	end
	return value
end

function api:get_option_string(name, default)
	local value = self:get_option_scalar(name, default)
	if value == nil then return nil end
	return tostring(value)
end

-- `min` and `max` are Prosody 0.13's additions: a number outside them is logged
-- and the default used instead.
function api:get_option_number(name, default, min, max)
	local value = self:get_option_scalar(name, default)
	local number = tonumber(value)
	if value ~= nil and number == nil then
		self:log("error", "Config option '%s' not understood, expecting a number", name)
		return nil
	end
	if number ~= nil and number ~= default and ((min and number < min) or (max and number > max)) then
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
			self:log("error", "Config option '%s' should be an integer, got %s; using the default", name, tostring(number))
			return default
		end
		return math.tointeger(number)
	end
	return number
end

function api:get_option_boolean(name, default)
	local value = self:get_option_scalar(name, default)
	if value == nil then return nil end
	if value == true or value == "true" or value == 1 then return true end
	if value == false or value == "false" or value == 0 then return false end
	self:log("error", "Config option '%s' not understood, expecting true/false", name)
	return nil
end

-- A copy of the list (its items 1..#list, as util.array's append takes them);
-- a single value is a list of one.
function api:get_option_array(name, default)
	local value = self:get_option(name, default)
	if value == nil then return nil end
	if type(value) ~= "table" then return { value } end
	local copy = {}
	for i = 1, #value do copy[i] = value[i] end
	return copy
end

function api:get_option_set(name, default)
	local list = self:get_option_array(name, default)
	if list == nil then return nil end
	return new_set(list)
end

-- The host's set (which, unset on the host, is the global one) with the global
-- section's added; nil when neither is set and there is no default.
function api:get_option_inherited_set(name, default)
	local mine = self:get_option_set(name, default)
	local global = self:context("*"):get_option_set(name, default)
	if not mine then return global end
	if not global then return mine end
	mine:include(global)
	return mine
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

-- As Prosody: relative to the module's own folder unless `parent` is given, either
-- as a folder or as the name of one of Prosody's paths ("config").
local named_paths = { config = function () return host.config_directory() end }
function api:get_option_path(name, default, parent)
	if parent == nil then
		parent = self:get_directory()
	elseif named_paths[parent] then
		parent = named_paths[parent]()
	end
	local value = self:get_option_string(name, default)
	if value == nil then return nil end
	value = value:gsub("^%./+", "")
	if value:sub(1, 1) == "/" then return value end
	return (parent:gsub("/+$", "")) .. "/" .. value
end

nethost.new_set = new_set

-- The `module:get_option*` family, as Prosody's `core/moduleapi.lua` defines
-- it: typed look-ups with defaults, a logged error for a value of the wrong
-- type. A Lua chunk of the module API that adds its methods to `nethost.api`.
local host, nethost = ...
local api = nethost.api
local type, pairs, ipairs, select, tostring, tonumber, next = type, pairs, ipairs, select, tostring, tonumber, next
local setmetatable = setmetatable
local t_sort, t_concat = table.sort, table.concat

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

nethost.new_set = new_set

-- Prosody 0.12's metrics API for modules: `module:metric` (metric families with
-- labels) and `module:measure` (the older one-function form). Every metric is a
-- swift-metrics metric of the host's (a counter, a gauge or a recorder), so
-- whatever metrics backend NetHost runs with exports the modules' metrics too.
-- A Lua chunk of the module API.
local host, nethost = ...
local api = nethost.api
local setmetatable, select, type, ipairs, error, tostring = setmetatable, select, type, ipairs, error, tostring
local t_concat, t_unpack = table.concat, table.unpack

local metric_types = { counter = true, gauge = true, histogram = true, summary = true }

-- A metric with all its labels set: the methods Prosody's util.openmetrics gives it.
local metric_mt = {}
metric_mt.__index = metric_mt
function metric_mt:add(value) host.metric_update(self.id, "add", value) end
function metric_mt:set(value) host.metric_update(self.id, "set", value) end
function metric_mt:sample(value) host.metric_update(self.id, "sample", value) end
function metric_mt:reset() host.metric_update(self.id, "set", 0) end

-- A family: one metric per combination of label values.
local family_mt = {}
family_mt.__index = family_mt
function family_mt:with_labels(...)
	local count = select("#", ...)
	if count ~= #self.label_keys then
		error("number of labels passed to with_labels does not match number of label keys", 2)
	end
	local values = { ... }
	for i = 1, count do values[i] = tostring(values[i]) end
	local key = t_concat(values, "\0")
	local metric = self.metrics[key]
	if not metric then
		metric = setmetatable({ id = host.metric_handle(self.type_, self.name, self.label_keys, values) }, metric_mt)
		self.metrics[key] = metric
	end
	return metric
end
function family_mt:with_partial_label(label)
	local family = self
	return {
		with_labels = function (_, ...) return family:with_labels(label, ...) end,
		with_partial_label = function (_, more) return family:with_partial_label(label, more) end,
	}
end

-- Families by full name, across reloads: a reloaded module finds the metrics it had.
local families = {}
local function family(type_, name, unit, description, label_keys)
	if not metric_types[type_] then error("unknown metric type " .. tostring(type_), 3) end
	local existing = families[name]
	if existing and existing.type_ == type_ and #existing.label_keys == #label_keys then return existing end
	local new = setmetatable({ type_ = type_, name = name, unit = unit, description = description,
		label_keys = label_keys, metrics = {} }, family_mt)
	families[name] = new
	return new
end

function api:metric(type_, name, unit, description, label_keys, conf)
	local scoped = self.host ~= "*"
	local keys = {}
	if scoped then keys[1] = "host" end
	for _, key in ipairs(label_keys or {}) do keys[#keys + 1] = key end
	local mf = family(type_, "prosody_mod_" .. self.name .. "/" .. name, unit, description, keys)
	self:add_item("metric", { name = name, mf = mf })
	if scoped then return mf:with_partial_label(self.host) end
	return mf
end

-- module:measure's kinds, as Prosody's statsmanager maps them onto metric families.
-- `self` is what names the metric: a module (prosody_mod_NAME/name, with its host as
-- a label on a host), or the statsmanager (prosody_name, with the label it is given).
local function legacy(self, type_, name, unit)
	local keys, values = {}, {}
	if self.label_key then keys[1], values[1] = self.label_key, self.label_value end
	local mf = family(type_, self.prefix .. name, unit, nil, keys)
	return mf:with_labels(t_unpack(values))
end
local function module_namer(module)
	local scoped = module.host ~= "*"
	return { prefix = "prosody_mod_" .. module.name .. "/", label_key = scoped and "host" or nil, label_value = module.host }
end
local measures = {
	amount = function (self, name, conf)
		local m = legacy(self, "gauge", name)
		local initial = type(conf) == "number" and conf or (type(conf) == "table" and conf.initial) or 0
		m:set(initial)
		return function (value) m:set(value) end
	end,
	counter = function (self, name)
		local m = legacy(self, "counter", name)
		return function (value) m:add(value) end
	end,
	rate = function (self, name)
		local m = legacy(self, "counter", name)
		return function () m:add(1) end
	end,
	times = function (self, name)
		local m = legacy(self, "histogram", name, "seconds")
		return function ()
			local start = host.monotonic()
			return function () m:sample(host.monotonic() - start) end
		end
	end,
	sizes = function (self, name)
		local m = legacy(self, "histogram", name, "bytes")
		return function (value) m:sample(value) end
	end,
	distribution = function (self, name)
		local m = legacy(self, "summary", name)
		return function (value) m:sample(value) end
	end,
}

function api:measure(name, stat_type, conf)
	local make = measures[stat_type]
	if not make then error("unknown legacy metric type " .. tostring(stat_type), 2) end
	self:add_item("measure", { name = name, type = stat_type, conf = conf })
	return make(module_namer(self), name, conf)
end

-- `require "core.statsmanager"`, for modules that use it directly: the same metrics.
nethost.statsmanager = {
	measure = function (stat_type, name, conf, label_key, label_value)
		local make = measures[stat_type]
		if not make then error("unknown legacy metric type " .. tostring(stat_type), 2) end
		return make({ prefix = "prosody_", label_key = label_key, label_value = label_value }, name, conf)
	end,
	metric = function (type_, name, unit, description, label_keys)
		return family(type_, name, unit, description, label_keys or {})
	end,
	cork = function () end,
	uncork = function () end,
}

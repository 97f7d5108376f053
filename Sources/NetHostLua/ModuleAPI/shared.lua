-- `require "nethost.shared"`: what the Lua states of one server share, like
-- OpenResty's ngx.shared.DICT. Every state (with lua_per_loop_services, one per
-- event loop) reaches the same dicts; everything else, module:shared included,
-- stays in its own state. Values are strings, numbers and booleans, copied in
-- and out; a write past lua_shared_dict_max_bytes returns nil, "no memory: ...".
--   local shared = require "nethost.shared"
--   local hits = shared.dict("hits")
--   hits:incr("total", 1, 0)          --> the new value (atomic across states)
--   hits:set(k, v) / hits:add(k, v) / hits:get(k) / hits:delete(k) / hits:get_keys(max)
--   shared.state(), shared.states()   --> this state's number (1 = the primary) and how many
-- A Lua chunk of the module API.
local host, nethost = ...
local setmetatable, type, error = setmetatable, type, error

local methods = {}
methods.__index = methods
function methods:get(key) return host.shared_get(self.name, key) end
function methods:set(key, value) return host.shared_set(self.name, key, value) end
function methods:safe_set(key, value) return host.shared_set(self.name, key, value) end
function methods:add(key, value) return host.shared_add(self.name, key, value) end
function methods:delete(key) host.shared_delete(self.name, key) end
function methods:incr(key, by, init) return host.shared_incr(self.name, key, by == nil and 1 or by, init) end
function methods:get_keys(max) return host.shared_keys(self.name, max) end

local dicts = {}
local shared = {}
function shared.dict(name)
	if type(name) ~= "string" then error("nethost.shared.dict: the dict's name must be a string", 2) end
	local dict = dicts[name]
	if not dict then
		dict = setmetatable({ name = name }, methods)
		dicts[name] = dict
	end
	return dict
end
-- ngx.shared.NAME's shape too: shared.hits is shared.dict("hits").
setmetatable(shared, { __index = function (_, name)
	if type(name) == "string" then return shared.dict(name) end
end })
function shared.state() return host.state_index() end
function shared.states() return host.state_count() end

package.preload["nethost.shared"] = function () return shared end
nethost.shared = shared

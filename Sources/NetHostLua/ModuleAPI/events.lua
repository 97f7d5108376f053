-- Events for Lua modules, as Prosody's `util/events.lua` offers them, and one
-- event object per host as Prosody's hosts have (`hosts[host].events`, and
-- `prosody.events` for the global host "*"). The first of the module API's
-- Lua chunks: it fills in `nethost.new_events` and `nethost.host_events`.
local host, nethost = ...
local ipairs, t_insert, t_remove, t_sort = ipairs, table.insert, table.remove, table.sort

local function by_priority(a, b)
	if a.priority ~= b.priority then return a.priority > b.priority end
	return a.seq < b.seq
end

-- An event object: add_handler(event, fn, priority), remove_handler(event, fn),
-- fire_event(event, ...). A function is a handler of an event once (adding it
-- again changes its priority). Higher priorities run first, equal ones in the
-- order they were added; a handler that returns non-nil stops the event and
-- fire_event returns that value.
local function new_events()
	local handlers = {}
	local seq = 0
	local object = {}

	function object.add_handler(event, fn, priority)
		local list = handlers[event]
		if not list then list = {}; handlers[event] = list end
		for _, h in ipairs(list) do
			if h.fn == fn then
				h.priority = priority or 0
				t_sort(list, by_priority)
				return true
			end
		end
		seq = seq + 1
		t_insert(list, { fn = fn, priority = priority or 0, seq = seq })
		t_sort(list, by_priority)
		return true
	end

	function object.remove_handler(event, fn)
		local list = handlers[event]
		if not list then return end
		for i = #list, 1, -1 do
			if list[i].fn == fn then t_remove(list, i) end
		end
		if #list == 0 then handlers[event] = nil end
	end

	-- Wrappers, as util.events has them: each is called as wrapper(next, event, data)
	-- around the handlers, the last added outermost; an event's own wrappers run
	-- before those of every event (added for the event `false`).
	local event_wrappers, all_wrappers = {}, nil
	local function add_wrapper(event, wrapper)
		local list
		if event == false then
			all_wrappers = all_wrappers or {}
			list = all_wrappers
		else
			list = event_wrappers[event] or {}
			event_wrappers[event] = list
		end
		list[#list + 1] = wrapper
	end
	local function remove_wrapper(event, wrapper)
		local list = event == false and all_wrappers or event_wrappers[event]
		if not list then return end
		for i = #list, 1, -1 do
			if list[i] == wrapper then t_remove(list, i) end
		end
		if #list == 0 then
			if event == false then all_wrappers = nil else event_wrappers[event] = nil end
		end
	end
	object.add_wrapper, object.remove_wrapper = add_wrapper, remove_wrapper
	-- What module:wrap_object_event hooks into.
	object.wrappers = { add_handler = add_wrapper, remove_handler = remove_wrapper }

	local dispatch
	function object.fire_event(event, ...)
		local list = event_wrappers[event] or all_wrappers
		if not list then return dispatch(event, ...) end
		local position = #list
		local function continue(name, data)
			position = position - 1
			if position == 0 then
				if all_wrappers == nil or list == all_wrappers then return dispatch(name, data) end
				list, position = all_wrappers, #all_wrappers
			end
			return list[position](continue, name, data)
		end
		return list[position](continue, event, (...))
	end

	function dispatch(event, ...)
		local list = handlers[event]
		if not list then return nil end
		-- The handlers as they were when the event started: one added or removed
		-- by a handler takes effect from the next event.
		local snapshot = {}
		for i, h in ipairs(list) do snapshot[i] = h.fn end
		for _, fn in ipairs(snapshot) do
			local result = fn(...)
			if result ~= nil then return result end
		end
		return nil
	end

	function object.has_handlers(event)
		return handlers[event] ~= nil
	end

	return object
end

-- One event object per host, made when first asked for. The functions in
-- nethost.on_new_events set up each new one (the port manager's handlers).
local by_host = {}
nethost.on_new_events = {}

function nethost.host_events(host_name)
	local events = by_host[host_name]
	if not events then
		events = new_events()
		by_host[host_name] = events
		for _, setup in ipairs(nethost.on_new_events) do setup(host_name, events) end
	end
	return events
end

nethost.new_events = new_events

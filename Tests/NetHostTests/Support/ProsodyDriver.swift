import Foundation

/// Runs a module lifecycle scenario on Prosody 0.12's own `core/modulemanager.lua`
/// and `core/moduleapi.lua` (Debian's prosody package, under /usr/lib/prosody)
/// with the system's `lua5.4`: headless, with `net.server`'s timer API on a clock
/// that moves only when the scenario says, and a global `trace` that the modules
/// and the driver write to. Returns the traced lines.
enum ProsodyDriver {
    static let prosodyRoot = "/usr/lib/prosody"
    static let lua = "/usr/bin/lua5.4"

    static var isAvailable: Bool {
        FileManager.default.isExecutableFile(atPath: lua)
            && FileManager.default.fileExists(atPath: prosodyRoot + "/core/modulemanager.lua")
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// Runs `body` with a new folder, removed afterwards.
    static func withScratchDirectory<T>(_ prefix: String, _ body: (String) throws -> T) throws -> T {
        let directory = NSTemporaryDirectory() + prefix + "-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        return try body(directory)
    }

    /// Both traces, numbered, and the line where they first differ: the message of
    /// a differential test's expectation.
    static func comparison(prosody: [String], nethost: [String]) -> String {
        let firstDifference = zip(prosody, nethost).enumerated().first { $0.element.0 != $0.element.1 }?.offset
            ?? min(prosody.count, nethost.count)
        return """
            first difference at line \(firstDifference + 1)
            Prosody:\n\(prosody.enumerated().map { "\($0 + 1) \($1)" }.joined(separator: "\n"))
            NetHost:\n\(nethost.enumerated().map { "\($0 + 1) \($1)" }.joined(separator: "\n"))
            """
    }

    /// The steps that load `probe` as two modules, `probe` on the global host and
    /// `host_probe` on a.example (a module loaded globally would only be added to
    /// the host), after an optional config file; the driver's own load lines are
    /// left out of the trace.
    static func runTwoHostProbe(_ probe: String, configFile: String? = nil, in directory: String) throws -> [String] {
        func quoted(_ text: String) -> String { "[==[" + text + "]==]" }
        let steps = """
            return {
              \(configFile.map { #"{ "config_file", \#(quoted($0)) },"# } ?? "")
              { "host", "a.example" },
              { "write", "probe", \(quoted(probe)) },
              { "write", "host_probe", \(quoted(probe)) },
              { "load", "*", "probe" },
              { "load", "a.example", "host_probe" },
            }
            """
        return try run(steps: steps, in: directory).filter { !$0.hasPrefix("driver: load") }
    }

    /// `steps`: a Lua chunk returning the list of steps (see `source` for their names).
    static func run(steps: String, in directory: String) throws -> [String] {
        let driver = directory + "/prosody-driver.lua"
        let stepsFile = directory + "/prosody-steps.lua"
        let plugins = directory + "/prosody-plugins"
        try FileManager.default.createDirectory(atPath: plugins, withIntermediateDirectories: true)
        try source.write(toFile: driver, atomically: true, encoding: .utf8)
        try steps.write(toFile: stepsFile, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: lua)
        process.arguments = [driver, plugins, stepsFile]
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let errorText = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw Failure(description: "lua5.4 exited with \(process.terminationStatus): \(errorText)\n\(text)")
        }
        return text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
    }

    static let source = #"""
local plugin_dir, steps_file = arg[1], arg[2]
package.path = "/usr/lib/prosody/?.lua;" .. package.path
package.cpath = "/usr/lib/prosody/?.so;" .. package.cpath
CFG_PLUGINDIR = plugin_dir .. "/"

local lines = {}
function trace(text) lines[#lines + 1] = tostring(text) end

-- net.server's timer API as server_epoll.lua offers it: add_task(delay, f, param)
-- calls f(now, id, param) with now the wall-clock time (server_epoll's realtime());
-- reschedule(id, delay) moves a pending timer to delay from now. The clock moves
-- only in advance().
local clock, timers, next_id = 0, {}, 1
local realtime = require "util.time".now
package.preload["net.server"] = function ()
	return {
		timer = {
			add_task = function (delay, f, param)
				local id = next_id; next_id = id + 1
				timers[id] = { at = clock + delay, f = f, param = param }
				return id
			end,
			stop = function (id) timers[id] = nil end,
			reschedule = function (id, delay) if timers[id] then timers[id].at = clock + delay end end,
		},
		add_task = function () end,
	}
end
local function advance(seconds)
	local target = clock + seconds
	while true do
		local due_id, due
		for id, t in pairs(timers) do
			if t.at <= target and (not due or t.at < due.at or (t.at == due.at and id < due_id)) then due_id, due = id, t end
		end
		if not due then break end
		clock = due.at
		timers[due_id] = nil
		local again = due.f(realtime(), due_id, due.param)
		if type(again) == "number" then due.at = clock + again; timers[due_id] = due end
	end
	clock = target
end

prosody = {
	events = require "util.events".new(), hosts = {}, paths = { plugins = plugin_dir },
	platform = "none", core_post_stanza = function () end, process_type = "prosody",
}
hosts = prosody.hosts
local config = require "core.configmanager"
local modulemanager = require "core.modulemanager"

local function strip(err) return (tostring(err):gsub("^.-:%d+: ", "")) end

local handlers = {}
function handlers.config(host, key, value) config.set(host, key, value) end
function handlers.config_file(path)
	local ok, kind, err = config.load(path)
	if not ok then trace("driver: config " .. tostring(kind) .. " error " .. tostring(err)) end
end
-- A host as core/hostmanager.lua's activate() makes it, without loading its modules.
function handlers.host(name)
	hosts[name] = { host = name, type = "local", events = require "util.events".new(), modules = {} }
end
function handlers.write(name, source)
	local f = assert(io.open(plugin_dir .. "/mod_" .. name .. ".lua", "w"))
	f:write(source)
	f:close()
end
function handlers.load(host, name)
	modulemanager.load(host, name)
	trace("driver: load " .. name .. " on " .. host .. ": loaded=" .. tostring(modulemanager.is_loaded(host, name) == true))
end
function handlers.reload(host, name)
	modulemanager.reload(host, name)
	trace("driver: reload " .. name .. " on " .. host .. ": loaded=" .. tostring(modulemanager.is_loaded(host, name) == true))
end
function handlers.unload(host, name)
	modulemanager.unload(host, name)
	trace("driver: unload " .. name .. " on " .. host)
end
function handlers.fire(host, event)
	(hosts[host] or prosody).events.fire_event(event, {})
end
function handlers.advance(seconds) advance(seconds) end
-- util/startup.lua's shutdown(): server-cleanup, server-stopped; nothing is unloaded.
function handlers.shutdown()
	prosody.events.fire_event("server-cleanup")
	prosody.events.fire_event("server-stopped")
end

for _, step in ipairs(dofile(steps_file)) do
	local ok, err = pcall(handlers[step[1]], table.unpack(step, 2))
	if not ok then trace("driver: step " .. step[1] .. " raised " .. strip(err)) end
end
for _, line in ipairs(lines) do print(line) end
"""#
}

import CLua

/// Owns one Lua state. Not thread-safe and not `Sendable`: a state belongs to
/// one thread (the event loop that runs Lua), and callers keep it there.
public final class LuaState {
    /// The main thread's stack.
    public let stack: LuaStack

    /// Which standard libraries a new state gets. Either way only Lua source
    /// loads (see `restrictToSourceChunks`).
    public enum Libraries: Sendable {
        /// Everything Lua ships (base, package, coroutine, table, io, os, string, math, utf8, debug).
        case all
        /// Only the libraries without access to the outside world: base, coroutine,
        /// table, string, math, utf8. The base library's file loaders are removed too.
        case safe
    }

    public init(libraries: Libraries = .all) throws(LuaError) {
        guard let L = nethost_newstate() else {
            throw LuaError(kind: .memory, message: "could not create a Lua state: out of memory")
        }
        self.stack = LuaStack(L)
        switch libraries {
        case .all:
            luaL_openlibs(L)
        case .safe:
            Self.openSafeLibraries(stack)
        }
        LuaFunctionRegistry.installMetatable(stack)
        try restrictToSourceChunks()
    }

    /// Whether `close()` has run; the stack must not be used after it.
    public private(set) var isClosed = false

    deinit {
        if !isClosed { nethost_close(stack.L) }
    }

    /// Closes the state now: pending finalizers (`__gc`) run, then every Lua
    /// value is freed. Later calls do nothing.
    public func close() {
        guard !isClosed else { return }
        isClosed = true
        nethost_close(stack.L)
    }

    /// From now on a host function called from Lua (say, by a finalizer while
    /// the state closes) raises an error instead of running: for an owner that
    /// is going away and cannot serve those calls any more.
    public func stopHostFunctions() {
        nethost_stop_host(stack.L)
    }

    /// The most memory the state may use while running Lua code (0: no limit).
    /// Past it, the code that asked for more gets a "not enough memory" error.
    public var memoryLimit: Int = 0 {
        didSet { nethost_set_memory_limit(stack.L, max(0, memoryLimit)) }
    }

    /// Applies `memoryLimit` only while `body` runs, which must be a protected call:
    /// outside one, a refused allocation would abort the process.
    /// Swift functions called from Lua are exempt while they run (see the shim's
    /// allocator): the limit can never raise a memory error through their frames.
    public func enforcingMemoryLimit<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        let was = nethost_enforce_memory_limit(stack.L, 1)
        defer { nethost_enforce_memory_limit(stack.L, was) }
        return try body()
    }

    /// Lifts `memoryLimit` while `body` runs: for the host's own clean-up, which
    /// must work even when a module has used all the memory it may.
    public func ignoringMemoryLimit<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        let was = nethost_enforce_memory_limit(stack.L, 0)
        defer { nethost_enforce_memory_limit(stack.L, was) }
        return try body()
    }

    private static func openSafeLibraries(_ stack: LuaStack) {
        let libraries: [(String, lua_CFunction)] = [
            ("_G", luaopen_base),
            ("coroutine", luaopen_coroutine),
            ("table", luaopen_table),
            ("string", luaopen_string),
            ("math", luaopen_math),
            ("utf8", luaopen_utf8),
        ]
        for (name, open) in libraries {
            luaL_requiref(stack.L, name, open, 1)
            stack.pop()
        }
        stack.pushGlobalTable()
        for unsafeName in ["dofile", "loadfile", "collectgarbage"] {
            stack.pushNil()
            stack.rawSetField(unsafeName, in: -2)
        }
        stack.pop()
    }

    /// Makes every loader the state offers accept Lua source only: `load`, and where
    /// the libraries have them `loadfile`, `dofile` and `require`'s searcher for Lua
    /// files; removes `string.dump`, with which Lua code makes bytecode. Lua 5.4
    /// runs precompiled chunks without verifying them, and crafted bytecode reads and
    /// writes arbitrary memory, so no Lua code NetHost runs may load any: not the
    /// config, not a module. C modules stay loadable in the full library set (see
    /// the shim). Done in C: raising Lua errors must not cross Swift frames.
    private func restrictToSourceChunks() throws(LuaError) {
        let status = nethost_restrict_to_source(stack.L)
        guard status == LUA_OK else {
            let message = stack.toString(at: -1) ?? "(error without message)"
            stack.pop()
            throw LuaError(kind: status == LUA_ERRMEM ? .memory : .runtime,
                           message: "could not restrict the Lua state to source chunks: \(message)")
        }
    }

    /// Runs a chunk of source in the global environment, or in the table on
    /// top of the stack if `inEnvironmentOnTop` is set (the table stays).
    public func run(_ source: String, chunkName: String, results: Int32 = 0) throws(LuaError) {
        try stack.load(source, chunkName: chunkName)
        try stack.call(arguments: 0, results: results)
    }

    /// Memory in use by this state, in bytes.
    public var memoryInUse: Int {
        Int(nethost_memory_used(stack.L))
    }

    /// Switches the collector to generational mode (Lua 5.4), which suits states
    /// that make many short-lived values around a stable set of long-lived ones.
    public func useGenerationalCollector() {
        _ = nethost_lua_gc_generational(stack.L)
    }

    /// Runs a full garbage-collection cycle.
    public func collectGarbage() {
        _ = nethost_lua_gc(stack.L, LUA_GCCOLLECT)
    }
}

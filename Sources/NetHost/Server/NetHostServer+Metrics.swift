/// What a metrics page reads from the server beyond `counters` and `tracker`.
extension NetHostServer {
    /// The bytes the Lua state holds now (every Lua module shares it, as in Prosody),
    /// read on the Lua loop without a collection: what `lua_memory_limit` is checked
    /// against. Nil once the server has stopped.
    public func luaMemoryInUse() async -> Int? {
        let modules = self.modules
        return try? await luaLoop.submit { modules.value.runtime.state.memoryInUse }.get()
    }
}

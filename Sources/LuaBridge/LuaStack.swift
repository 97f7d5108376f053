import CLua

/// A view of one Lua thread's stack: every operation Swift needs, none that
/// can raise a Lua error through a Swift frame except on allocation failure.
///
/// A `LuaStack` owns nothing; `LuaState` owns the state. Swift functions called
/// from Lua receive the stack of the calling thread (which may be a coroutine).
/// Each method states its stack effect as [-popped, +pushed].
public struct LuaStack {
    let L: OpaquePointer

    init(_ L: OpaquePointer) { self.L = L }

    // MARK: Size

    /// The index of the top element, which is also the number of elements.
    public var top: Int32 { lua_gettop(L) }

    /// Sets the top, dropping or nil-filling elements. [-?, +?]
    public func setTop(_ index: Int32) { lua_settop(L, index) }

    /// [-n, +0]
    public func pop(_ count: Int32 = 1) { nethost_lua_pop(L, count) }

    /// Runs `body` and then restores the stack to the height it had before,
    /// on every path, so a caller cannot leak stack slots.
    public func preservingTop<T>(_ body: () throws -> T) rethrows -> T {
        let saved = top
        defer { setTop(saved) }
        return try body()
    }

    /// The absolute form of a possibly negative index.
    public func absolute(_ index: Int32) -> Int32 { lua_absindex(L, index) }

    /// Makes sure there is room for `count` more values; false if Lua cannot grow the stack.
    @discardableResult
    public func reserve(_ count: Int32) -> Bool { lua_checkstack(L, count) != 0 }

    /// [-0, +1]
    public func pushCopy(of index: Int32) { lua_pushvalue(L, index) }
    /// Moves the top element into `index`, shifting up. [-1, +1]
    public func insert(at index: Int32) { nethost_lua_insert(L, index) }
    /// [-1, +0]
    public func remove(at index: Int32) { nethost_lua_remove(L, index) }

    // MARK: Types

    public func type(at index: Int32) -> LuaType {
        LuaType(rawValue: lua_type(L, index)) ?? .none
    }

    public func isNil(at index: Int32) -> Bool { nethost_lua_isnoneornil(L, index) != 0 }

    /// The name of the value's basic type, for messages.
    public func typeName(at index: Int32) -> String {
        String(cString: lua_typename(L, lua_type(L, index)))
    }

    // MARK: Pushing [-0, +1] each

    public func pushNil() { lua_pushnil(L) }
    public func push(_ value: Bool) { lua_pushboolean(L, value ? 1 : 0) }
    public func push(_ value: Int) { lua_pushinteger(L, lua_Integer(value)) }
    public func push(_ value: Double) { lua_pushnumber(L, value) }

    public func push(_ value: String) {
        var value = value
        value.withUTF8 { utf8 in
            _ = utf8.withMemoryRebound(to: CChar.self) { chars in
                lua_pushlstring(L, chars.baseAddress, chars.count)
            }
        }
    }

    /// Pushes raw bytes as a Lua string (Lua strings are byte strings).
    public func push(bytes: UnsafeRawBufferPointer) {
        let base = bytes.baseAddress?.assumingMemoryBound(to: CChar.self)
        lua_pushlstring(L, base, bytes.count)
    }

    public func push(bytes: some Sequence<UInt8>) {
        let array = Array(bytes)
        array.withUnsafeBytes { push(bytes: $0) }
    }

    public func push(_ value: String?) {
        if let value { push(value) } else { pushNil() }
    }

    public func pushGlobalTable() {
        lua_rawgeti(L, nethost_lua_registryindex(), nethost_lua_ridx_globals())
    }

    // MARK: Reading (never raising, never converting in place)

    public func toBoolean(at index: Int32) -> Bool { lua_toboolean(L, index) != 0 }

    /// The value as an integer if it is a number with an exact integer value
    /// (strings are not converted: config and API values must have the right type).
    public func toInteger(at index: Int32) -> Int? {
        guard type(at: index) == .number else { return nil }
        var isNumber: Int32 = 0
        let value = nethost_lua_tointeger(L, index, &isNumber)
        return isNumber != 0 ? Int(value) : nil
    }

    public func isInteger(at index: Int32) -> Bool { lua_isinteger(L, index) != 0 }

    public func toNumber(at index: Int32) -> Double? {
        guard type(at: index) == .number else { return nil }
        return nethost_lua_tonumber(L, index, nil)
    }

    /// The bytes of a string value, without copying, valid while the value stays on the stack.
    public func withStringBytes<T>(at index: Int32, _ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T? {
        guard type(at: index) == .string else { return nil }
        var length = 0
        guard let pointer = lua_tolstring(L, index, &length) else { return nil }
        return try body(UnsafeRawBufferPointer(start: pointer, count: length))
    }

    /// Where a string value's bytes are, and how many: nil for anything but a string.
    /// The address is valid while the string is reachable from Lua.
    public func stringAddress(at index: Int32) -> (UnsafeRawPointer, Int)? {
        guard type(at: index) == .string else { return nil }
        var length = 0
        guard let pointer = lua_tolstring(L, index, &length) else { return nil }
        return (UnsafeRawPointer(pointer), length)
    }

    /// A string value decoded as UTF-8 (invalid sequences repaired). Numbers are not converted.
    public func toString(at index: Int32) -> String? {
        withStringBytes(at: index) { String(decoding: $0, as: UTF8.self) }
    }

    public func toBytes(at index: Int32) -> [UInt8]? {
        withStringBytes(at: index) { Array($0) }
    }

    /// What Lua's `tostring` would print, for messages; calls `__tostring`.
    public func describe(at index: Int32) -> String {
        let index = absolute(index)
        var length = 0
        // luaL_tolstring can only fail on a broken __tostring, which raises; we
        // only call it from protected contexts or for plain values.
        guard let pointer = luaL_tolstring(L, index, &length) else { return "?" }
        let text = String(decoding: UnsafeRawBufferPointer(start: pointer, count: length), as: UTF8.self)
        pop()
        return text
    }

    // MARK: Tables

    /// [-0, +1]
    public func newTable(arrayCapacity: Int32 = 0, fieldCapacity: Int32 = 0) {
        lua_createtable(L, arrayCapacity, fieldCapacity)
    }

    /// Pushes `table[name]` without metamethods. [-0, +1]
    @discardableResult
    public func rawGetField(_ name: String, from table: Int32) -> LuaType {
        let table = absolute(table)
        push(name)
        return LuaType(rawValue: lua_rawget(L, table)) ?? .none
    }

    /// Pushes `table[index]` without metamethods. [-0, +1]
    @discardableResult
    public func rawGetIndex(_ index: Int, from table: Int32) -> LuaType {
        LuaType(rawValue: lua_rawgeti(L, table, lua_Integer(index))) ?? .none
    }

    /// Pops a value and stores it as `table[name]` without metamethods. [-1, +0]
    public func rawSetField(_ name: String, in table: Int32) {
        let table = absolute(table)
        push(name)
        insert(at: -2)
        lua_rawset(L, table)
    }

    /// Pops a value and stores it as `table[index]`. [-1, +0]
    public func rawSetIndex(_ index: Int, in table: Int32) {
        lua_rawseti(L, table, lua_Integer(index))
    }

    /// Pops key and value and stores them in the table. [-2, +0]
    public func rawSet(in table: Int32) { lua_rawset(L, table) }

    /// The length of a table or string without metamethods.
    public func rawLength(at index: Int32) -> Int { Int(lua_rawlen(L, index)) }

    /// Iterates a table: `body` sees the key at -2 and the value at -1 and must
    /// leave the stack as it found it. Stops early when `body` returns false.
    public func forEachPair(in table: Int32, _ body: () throws -> Bool) rethrows {
        let table = absolute(table)
        pushNil()
        while lua_next(L, table) != 0 {
            let keepGoing = try body()
            pop()  // the value; the key stays for lua_next
            if !keepGoing {
                pop()
                return
            }
        }
    }

    /// Sets the metatable of the value at `index` to the table on top. [-1, +0]
    public func setMetatable(of index: Int32) { lua_setmetatable(L, index) }

    /// Pushes the metatable of the value, if it has one. [-0, +(0|1)]
    public func pushMetatable(of index: Int32) -> Bool { lua_getmetatable(L, index) != 0 }

    /// The address of a table, function or userdata, stable while it lives; nil for other values.
    public func identity(at index: Int32) -> UnsafeRawPointer? {
        lua_topointer(L, index)
    }

    public func rawEqual(_ a: Int32, _ b: Int32) -> Bool { lua_rawequal(L, a, b) != 0 }

    // MARK: Registry references

    /// Pops the top value and keeps it in the registry. [-1, +0]
    public func makeReference() -> LuaReference {
        LuaReference(id: luaL_ref(L, nethost_lua_registryindex()))
    }

    /// Keeps a copy of the value at `index` in the registry. [-0, +0]
    public func makeReference(to index: Int32) -> LuaReference {
        pushCopy(of: index)
        return makeReference()
    }

    /// [-0, +1]
    @discardableResult
    public func push(_ reference: LuaReference) -> LuaType {
        if reference.isNone {
            pushNil()
            return .nil
        }
        return LuaType(rawValue: lua_rawgeti(L, nethost_lua_registryindex(), lua_Integer(reference.id))) ?? .none
    }

    public func release(_ reference: LuaReference) {
        guard !reference.isNone else { return }
        luaL_unref(L, nethost_lua_registryindex(), reference.id)
    }

    // MARK: Calling

    /// Calls the function below `argumentCount` arguments on top, in protected
    /// mode with a traceback. On success `resultCount` results replace them
    /// (`nil` keeps them all); on failure the stack is as before the function was pushed.
    public func call(arguments argumentCount: Int32, results resultCount: Int32? = 0) throws(LuaError) {
        let functionIndex = top - argumentCount
        nethost_push_traceback_handler(L)
        insert(at: functionIndex)
        let status = nethost_lua_pcall(L, argumentCount, resultCount ?? nethost_lua_multret(), functionIndex)
        remove(at: functionIndex)
        guard status == LUA_OK else {
            let text = toString(at: -1) ?? "(error without message)"
            pop()
            throw LuaError.fromHandlerOutput(text, kind: status == LUA_ERRMEM ? .memory : .runtime)
        }
    }

    /// Compiles a chunk of Lua source and pushes it as a function. [-0, +1] on success,
    /// [-0, +0] on failure. Precompiled (binary) chunks are refused: Lua does not verify
    /// them. `chunkName` follows Lua's convention: "@path" names a file, "=name" a literal name.
    public func load(_ source: UnsafeRawBufferPointer, chunkName: String) throws(LuaError) {
        let base = source.baseAddress?.assumingMemoryBound(to: CChar.self)
        let status = nethost_load_source(L, base, source.count, chunkName)
        guard status == LUA_OK else {
            let message = toString(at: -1) ?? "(error without message)"
            pop()
            throw LuaError(kind: status == LUA_ERRMEM ? .memory : .syntax, message: message)
        }
    }

    public func load(_ source: String, chunkName: String) throws(LuaError) {
        var source = source
        let failure: LuaError? = source.withUTF8 { utf8 in loadReportingFailure(UnsafeRawBufferPointer(utf8), chunkName) }
        if let failure { throw failure }
    }

    public func load(_ source: [UInt8], chunkName: String) throws(LuaError) {
        let failure: LuaError? = source.withUnsafeBytes { bytes in loadReportingFailure(bytes, chunkName) }
        if let failure { throw failure }
    }

    /// `load`, with the error as a value: the buffer accessors' closures cannot throw a typed error.
    private func loadReportingFailure(_ source: UnsafeRawBufferPointer, _ chunkName: String) -> LuaError? {
        do throws(LuaError) {
            try load(source, chunkName: chunkName)
            return nil
        } catch {
            return error
        }
    }

    /// Sets the environment (`_ENV`, the first upvalue) of a loaded chunk on top of the stack
    /// to the table at `environment`. [-0, +0]
    public func setChunkEnvironment(_ environment: Int32) {
        let environment = absolute(environment)
        pushCopy(of: environment)
        _ = lua_setupvalue(L, -2, 1)
    }

    /// Where the function at `level` of the call stack is running, as "source:line",
    /// for warnings about what a config or module did. Level 1 is the function
    /// that called the current Swift function.
    public func location(level: Int32 = 1) -> (source: String, line: Int)? {
        var record = lua_Debug()
        guard lua_getstack(L, level, &record) != 0, lua_getinfo(L, "Sl", &record) != 0 else { return nil }
        let source = withUnsafeBytes(of: &record.short_src) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        return (source, Int(record.currentline))
    }

    /// Limits how many VM instructions the next calls may run before they raise
    /// an error; 0 lifts the limit.
    public func setInstructionBudget(_ count: Int32) {
        nethost_set_instruction_budget(L, count)
    }

    /// Runs `body` under a budget of `count` instructions of its own, then puts
    /// back the budget that was in force, spent or not.
    public func withOwnInstructionBudget<T, E: Error>(_ count: Int32, _ body: () throws(E) -> T) throws(E) -> T {
        let outer = nethost_current_budget(L)
        nethost_set_instruction_budget(L, count)
        defer { nethost_restore_budget(L, outer) }
        return try body()
    }
}

import CLua

/// A Swift class that Lua code can hold as a userdata value. The userdata keeps
/// a strong reference; its `__gc` releases it. Each type has one metatable,
/// registered once per state with `LuaStack.registerUserdataType`.
public protocol LuaUserdata: AnyObject {
    /// The metatable's name in the registry, also shown by `tostring`. Static text:
    /// its address never changes, so Lua's string cache finds it without hashing it
    /// again, and no C string is made for each look-up (one per method call).
    static var luaTypeName: StaticString { get }
}

extension LuaUserdata {
    /// `luaTypeName` as the C string the Lua API takes.
    static var luaTypeNameCString: UnsafePointer<CChar> {
        UnsafeRawPointer(luaTypeName.utf8Start).assumingMemoryBound(to: CChar.self)
    }
}

extension LuaStack {
    /// Creates the metatable of `T`, with `methods` reachable through `__index`
    /// and any extra metamethods (`__tostring`, `__eq`, ...). Does nothing if the
    /// type is already registered. [-0, +0]
    public func registerUserdataType<T: LuaUserdata>(
        _ type: T.Type,
        methods: [String: LuaFunction],
        metamethods: [String: LuaFunction] = [:]
    ) {
        guard luaL_newmetatable(L, T.luaTypeNameCString) != 0 else {
            pop()
            return
        }
        newTable(fieldCapacity: Int32(methods.count))
        for (name, function) in methods {
            setFunction(name, in: -1, function)
        }
        rawSetField("__index", in: -2)
        for (name, function) in metamethods {
            setFunction(name, in: -1, function)
        }
        lua_pushcclosure(L, releaseUserdataObject, 0)
        rawSetField("__gc", in: -2)
        push("nethost.\(T.luaTypeName)")
        rawSetField("__name", in: -2)
        pop()
    }

    /// Pushes a new userdata holding `object`. [-0, +1]
    public func pushUserdata<T: LuaUserdata>(_ object: T) {
        guard let slot = nethost_lua_newuserdata(L, MemoryLayout<UnsafeMutableRawPointer?>.size) else { return }
        let pointer = Unmanaged.passRetained(object as AnyObject).toOpaque()
        slot.storeBytes(of: pointer, as: UnsafeMutableRawPointer?.self)
        luaL_setmetatable(L, T.luaTypeNameCString)
    }

    /// The object held by the userdata at `index`, if it is a `T` that was not yet collected.
    public func userdata<T: LuaUserdata>(at index: Int32, as type: T.Type) -> T? {
        guard let slot = luaL_testudata(L, index, T.luaTypeNameCString),
              let pointer = slot.load(as: UnsafeMutableRawPointer?.self)
        else { return nil }
        let object = Unmanaged<AnyObject>.fromOpaque(pointer).takeUnretainedValue()
        // Exactly a `T` (the usual case: the metatable is `T`'s): a pointer comparison
        // instead of a dynamic cast, on every method call. The cast stays for the rest,
        // as `debug.setmetatable` can give `T`'s metatable to another userdata.
        if ObjectIdentifier(Swift.type(of: object)) == ObjectIdentifier(T.self) { return unsafeDowncast(object, to: T.self) }
        return object as? T
    }

    /// The object at `index` as an argument, or an error naming the argument.
    public func checkUserdata<T: LuaUserdata>(_ index: Int32, as type: T.Type, function: String) throws -> T {
        guard let object = userdata(at: index, as: type) else {
            throw LuaArgumentError(argument: index, function: function, "\(T.luaTypeName) expected, got \(typeName(at: index))")
        }
        return object
    }
}

private let releaseUserdataObject: lua_CFunction = { L in
    guard let L, let slot = lua_touserdata(L, 1) else { return 0 }
    if let pointer = slot.load(as: UnsafeMutableRawPointer?.self) {
        Unmanaged<AnyObject>.fromOpaque(pointer).release()
        slot.storeBytes(of: nil, as: UnsafeMutableRawPointer?.self)
    }
    return 0
}

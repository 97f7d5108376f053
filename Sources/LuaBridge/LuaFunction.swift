import CLua

/// A Swift function Lua can call. It reads its arguments from `stack` (they
/// start at index 1), pushes its results and returns how many. A thrown error is
/// raised in Lua as an error message: the `longjmp` happens in C, after this
/// Swift frame has returned.
public typealias LuaFunction = (LuaStack) throws -> Int32

/// Holds a Swift closure inside a Lua userdata; `__gc` releases it.
final class LuaFunctionBox {
    let function: LuaFunction
    init(_ function: @escaping LuaFunction) { self.function = function }
}

enum LuaFunctionRegistry {
    static let metatableName = "nethost.function"

    static func installMetatable(_ stack: LuaStack) {
        guard luaL_newmetatable(stack.L, metatableName) != 0 else {
            stack.pop()
            return
        }
        lua_pushcclosure(stack.L, releaseBox, 0)
        stack.rawSetField("__gc", in: -2)
        stack.pop()
    }

    /// The one C-callable entry point for every Swift function: finds the box
    /// in upvalue 2 and calls it, turning errors into a message on the stack.
    static let dispatch: nethost_swift_function = { L in
        guard let L else { return 0 }
        let stack = LuaStack(L)
        guard let slot = lua_touserdata(L, nethost_lua_upvalueindex(2)) else {
            stack.push("internal error: Swift function without its closure")
            return -1
        }
        let box = slot.load(as: Unmanaged<LuaFunctionBox>.self).takeUnretainedValue()
        do {
            return try box.function(stack)
        } catch let error as LuaArgumentError {
            stack.pushErrorMessage(error.message, level: 1)
            return -1
        } catch let error as LuaError {
            // Already carries its position; do not prefix again.
            stack.push(error.message)
            return -1
        } catch {
            stack.pushErrorMessage(String(describing: error), level: 1)
            return -1
        }
    }

    static let releaseBox: lua_CFunction = { L in
        guard let L, let slot = lua_touserdata(L, 1) else { return 0 }
        let pointer = slot.load(as: UnsafeMutableRawPointer?.self)
        if let pointer {
            Unmanaged<LuaFunctionBox>.fromOpaque(pointer).release()
            slot.storeBytes(of: nil, as: UnsafeMutableRawPointer?.self)
        }
        return 0
    }
}

extension LuaStack {
    /// Pushes a Swift closure as a Lua function. [-0, +1]
    public func push(function: @escaping LuaFunction) {
        // lua_newuserdatauv raises on allocation failure rather than returning NULL.
        guard let slot = nethost_lua_newuserdata(L, MemoryLayout<UnsafeMutableRawPointer>.size) else {
            pushNil()
            return
        }
        let box = Unmanaged.passRetained(LuaFunctionBox(function))
        slot.storeBytes(of: box, as: Unmanaged<LuaFunctionBox>.self)
        nethost_luaL_getmetatable(L, LuaFunctionRegistry.metatableName)
        lua_setmetatable(L, -2)
        nethost_push_swift_function(L, LuaFunctionRegistry.dispatch, 1)
    }

    /// Sets `table[name]` to a Swift function. [-0, +0]
    public func setFunction(_ name: String, in table: Int32, _ function: @escaping LuaFunction) {
        let table = absolute(table)
        push(function: function)
        rawSetField(name, in: table)
    }

    /// Pushes "chunk:line: message" like luaL_error would, for the caller at `level`.
    func pushErrorMessage(_ message: String, level: Int32) {
        if let location = location(level: level), location.line > 0 {
            push("\(location.source):\(location.line): \(message)")
        } else {
            push(message)
        }
    }

    /// The value at `index` as a string argument, or an error naming the argument.
    public func checkString(_ index: Int32, function: String) throws -> String {
        guard let value = toString(at: index) else {
            throw LuaArgumentError(argument: index, function: function, "string expected, got \(typeName(at: index))")
        }
        return value
    }

    public func checkInteger(_ index: Int32, function: String) throws -> Int {
        guard let value = toInteger(at: index) else {
            throw LuaArgumentError(argument: index, function: function, "integer expected, got \(typeName(at: index))")
        }
        return value
    }

    public func checkNumber(_ index: Int32, function: String) throws -> Double {
        guard let value = toNumber(at: index) else {
            throw LuaArgumentError(argument: index, function: function, "number expected, got \(typeName(at: index))")
        }
        return value
    }

    public func checkType(_ index: Int32, _ expected: LuaType, function: String) throws {
        guard type(at: index) == expected else {
            throw LuaArgumentError(argument: index, function: function, "\(expected.name) expected, got \(typeName(at: index))")
        }
    }
}

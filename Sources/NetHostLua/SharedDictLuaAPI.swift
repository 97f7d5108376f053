import LuaBridge

/// The host primitives behind `require "nethost.shared"` (ModuleAPI/shared.lua):
/// the cross-state store (`SharedDicts`) and which Lua state this is. Arguments
/// are read without raising; a failure is returned to Lua as `nil, message`
/// (`false, "exists"` for `add`), as OpenResty's `ngx.shared.DICT` does.
enum SharedDictLuaAPI {
    static func primitives(store: SharedDicts, stateIndex: Int, stateCount: Int) -> [String: LuaFunction] {
        [
            "shared_get": { stack in
                let (dict, key) = try names(stack, "get")
                push(store.get(dict, key), on: stack)
                return 1
            },
            "shared_set": { stack in
                let (dict, key) = try names(stack, "set")
                let value = stack.isNil(at: 3) ? nil : try self.value(stack, at: 3, function: "set")
                return outcome(stack) { () throws(SharedDicts.Failure) in try store.set(dict, key, value) }
            },
            "shared_add": { stack in
                let (dict, key) = try names(stack, "add")
                let value = try self.value(stack, at: 3, function: "add")
                return outcome(stack, failed: false) { () throws(SharedDicts.Failure) in try store.add(dict, key, value) }
            },
            "shared_delete": { stack in
                let (dict, key) = try names(stack, "delete")
                store.delete(dict, key)
                return 0
            },
            "shared_incr": { stack in
                let (dict, key) = try names(stack, "incr")
                let by = try number(stack, at: 3, function: "incr")
                let initial = stack.isNil(at: 4) ? nil : try number(stack, at: 4, function: "incr")
                do throws(SharedDicts.Failure) {
                    push(try store.increment(dict, key, by: by, initial: initial), on: stack)
                    return 1
                } catch {
                    stack.pushNil()
                    stack.push(error.description)
                    return 2
                }
            },
            "shared_keys": { stack in
                let dict = try stack.checkString(1, function: "get_keys")
                let limit = stack.toInteger(at: 2).map { $0 <= 0 ? Int.max : $0 } ?? 1024
                let keys = store.keys(dict, limit: limit)
                stack.newTable(arrayCapacity: Int32(clamping: keys.count))
                for (index, key) in keys.enumerated() {
                    stack.push(key)
                    stack.rawSetIndex(index + 1, in: -2)
                }
                return 1
            },
            "state_index": { stack in
                stack.push(stateIndex)
                return 1
            },
            "state_count": { stack in
                stack.push(stateCount)
                return 1
            },
        ]
    }

    private static func names(_ stack: LuaStack, _ function: String) throws -> (String, String) {
        (try stack.checkString(1, function: function), try stack.checkString(2, function: function))
    }

    /// `true`, or `failed` and the reason.
    private static func outcome(
        _ stack: LuaStack, failed: Bool? = nil, _ write: () throws(SharedDicts.Failure) -> Void
    ) -> Int32 {
        do throws(SharedDicts.Failure) {
            try write()
            stack.push(true)
            return 1
        } catch {
            if let failed { stack.push(failed) } else { stack.pushNil() }
            stack.push(error.description)
            return 2
        }
    }

    private static func value(_ stack: LuaStack, at index: Int32, function: String) throws -> SharedDicts.Value {
        switch stack.type(at: index) {
        case .string:
            return .string(stack.toBytes(at: index) ?? [])
        case .boolean:
            return .boolean(stack.toBoolean(at: index))
        case .number:
            return try number(stack, at: index, function: function)
        default:
            throw LuaArgumentError(
                argument: index - 1, function: function,
                "a shared dict holds strings, numbers and booleans, not \(stack.typeName(at: index))"
            )
        }
    }

    private static func number(_ stack: LuaStack, at index: Int32, function: String) throws -> SharedDicts.Value {
        if stack.isInteger(at: index), let integer = stack.toInteger(at: index) { return .integer(integer) }
        if let number = stack.toNumber(at: index) { return .number(number) }
        throw LuaArgumentError(argument: index - 1, function: function, "number expected, got \(stack.typeName(at: index))")
    }

    private static func push(_ value: SharedDicts.Value?, on stack: LuaStack) {
        switch value {
        case nil: stack.pushNil()
        case .string(let bytes)?: stack.push(bytes: bytes)
        case .integer(let integer)?: stack.push(integer)
        case .number(let number)?: stack.push(number)
        case .boolean(let flag)?: stack.push(flag)
        }
    }
}

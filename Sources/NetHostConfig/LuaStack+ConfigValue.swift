import LuaBridge

/// Moving config values in and out of Lua.
extension LuaStack {
    /// Pushes a config value as the Lua value it came from. [-0, +1], or [-0, +0] when it
    /// throws: tables nested deeper than `ConfigValue.maximumNesting`, or a Lua stack
    /// that cannot grow any more.
    public func push(_ value: ConfigValue) throws(ConfigConversionError) {
        let saved = top
        do throws(ConfigConversionError) {
            try push(value, depth: 0)
        } catch {
            setTop(saved)
            throw error
        }
    }

    private func push(_ value: ConfigValue, depth: Int) throws(ConfigConversionError) {
        // Each level holds its table and a key while the level below is pushed, and a
        // Swift function called from Lua is only promised LUA_MINSTACK (20) free slots:
        // without asking for room a deep table writes past the end of the Lua stack.
        // Three slots: this value, a key, and the value of the level below.
        guard reserve(3) else {
            throw ConfigConversionError(description: "the Lua stack cannot grow to hold this value")
        }
        switch value {
        case .string(let string): push(string)
        case .integer(let integer): push(integer)
        case .number(let number): push(number)
        case .boolean(let boolean): push(boolean)
        case .table(let table):
            guard depth < ConfigValue.maximumNesting else {
                throw ConfigConversionError(description: "tables nested more than \(ConfigValue.maximumNesting) deep")
            }
            newTable(arrayCapacity: Int32(clamping: table.array.count), fieldCapacity: Int32(clamping: table.map.count))
            for (offset, element) in table.array.enumerated() {
                try push(element, depth: depth + 1)
                rawSetIndex(offset + 1, in: -2)
            }
            for (key, element) in table.map {
                switch key {
                case .integer(let integer): push(integer)
                case .string(let string): push(string)
                }
                try push(element, depth: depth + 1)
                rawSet(in: -3)
            }
        }
    }

    /// Why a Lua value could not become a config value, or a config value a Lua value.
    public struct ConfigConversionError: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// Reads the value at `index` as a config value; `nil` for Lua nil.
    /// Functions, userdata, threads and tables nested deeper than
    /// `ConfigValue.maximumNesting` or in a cycle are refused.
    public func configValue(at index: Int32, depth: Int = 0) throws(ConfigConversionError) -> ConfigValue? {
        let index = absolute(index)
        switch type(at: index) {
        case .none, .nil:
            return nil
        case .boolean:
            return .boolean(toBoolean(at: index))
        case .number:
            if isInteger(at: index), let integer = toInteger(at: index) { return .integer(integer) }
            return .number(toNumber(at: index) ?? 0)
        case .string:
            return .string(toString(at: index) ?? "")
        case .table:
            guard depth < ConfigValue.maximumNesting else {
                throw ConfigConversionError(description: "tables nested more than \(ConfigValue.maximumNesting) deep (a cycle?)")
            }
            return .table(try configTable(at: index, depth: depth + 1))
        case .function, .userdata, .lightUserdata, .thread:
            throw ConfigConversionError(description: "a \(typeName(at: index)) value cannot be a config option")
        }
    }

    private func configTable(at index: Int32, depth: Int) throws(ConfigConversionError) -> ConfigTable {
        var table = ConfigTable()
        guard reserve(4) else {
            throw ConfigConversionError(description: "tables nested too deep for the Lua stack")
        }
        var integerKeyed: [Int: ConfigValue] = [:]
        var failure: ConfigConversionError?
        forEachPair(in: index) {
            let converted: ConfigValue?
            do throws(ConfigConversionError) {
                converted = try configValue(at: -1, depth: depth)
            } catch {
                failure = error
                return false
            }
            guard let value = converted else { return true }
                switch type(at: -2) {
                case .number:
                    if isInteger(at: -2), let key = toInteger(at: -2) {
                        integerKeyed[key] = value
                    } else {
                        failure = ConfigConversionError(description: "table key \(describeKey()) is not an integer or a string")
                        return false
                    }
                case .string:
                    table.map[.string(toString(at: -2) ?? "")] = value
                default:
                    failure = ConfigConversionError(description: "a table key of type \(typeName(at: -2)) is not allowed")
                    return false
                }
                return true
        }
        if let failure { throw failure }
        // Keys 1...n without a gap form the sequence; every other integer key is a map key.
        var next = 1
        while let value = integerKeyed.removeValue(forKey: next) {
            table.array.append(value)
            next += 1
        }
        for (key, value) in integerKeyed {
            table.map[.integer(key)] = value
        }
        return table
    }

    private func describeKey() -> String {
        toNumber(at: -2).map { String($0) } ?? "?"
    }
}

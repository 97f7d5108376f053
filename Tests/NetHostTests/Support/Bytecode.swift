import CLua

/// Real Lua 5.4 bytecode, for the tests that check no loader accepts it.
///
/// Every state NetHost makes has lost `string.dump`, so the bytes come from a bare
/// state of the system's Lua made here for that alone: it compiles and dumps, and
/// runs nothing. This is the only place outside the Lua layer that imports CLua.
enum Bytecode {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// The precompiled form of the chunk `source`.
    static func compile(_ source: String) throws -> [UInt8] {
        guard let L = luaL_newstate() else { throw Failure(description: "could not create a Lua state") }
        defer { lua_close(L) }
        guard luaL_loadstring(L, source) == LUA_OK else {
            throw Failure(description: lua_tolstring(L, -1, nil).map { String(cString: $0) } ?? "does not compile")
        }
        var bytes: [UInt8] = []
        let status = withUnsafeMutablePointer(to: &bytes) { output in
            lua_dump(L, { _, data, size, userData in
                guard let data, let userData else { return 1 }
                userData.assumingMemoryBound(to: [UInt8].self).pointee
                    .append(contentsOf: UnsafeRawBufferPointer(start: data, count: size))
                return 0
            }, output, 0)
        }
        guard status == 0, bytes.first == 0x1B else { throw Failure(description: "lua_dump failed") }
        return bytes
    }

    /// `bytes` as a Lua string literal, every byte a three-digit decimal escape.
    static func luaLiteral(_ bytes: [UInt8]) -> String {
        "\"" + bytes.map { byte in
            let digits = String(byte)
            return "\\" + String(repeating: "0", count: 3 - digits.count) + digits
        }.joined() + "\""
    }
}

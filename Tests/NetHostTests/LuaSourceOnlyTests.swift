import Foundation
import LuaBridge
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging

/// Lua 5.4 runs bytecode without verifying it, and crafted bytecode reads and writes
/// arbitrary memory: no loader of any state NetHost makes may accept it.
@Suite("Only Lua source loads")
struct LuaSourceOnlyTests {
    static let refusal = "precompiled Lua (a binary chunk) is not allowed: NetHost loads Lua source only"

    /// A folder with the same chunk, `return 42`, as bytecode and as source, and a
    /// full state (the modules' library set) with `BYTECODE`, `SOURCE` and `DIR` set.
    final class Files {
        let directory: String
        let lua: LuaState

        init(libraries: LuaState.Libraries = .all) throws {
            directory = NSTemporaryDirectory() + "nethost-bytecode-" + UUID().uuidString
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let bytecode = try Bytecode.compile("return 42")
            try Data(bytecode).write(to: URL(fileURLWithPath: directory + "/compiled.lua"))
            try "return 42".write(toFile: directory + "/source.lua", atomically: true, encoding: .utf8)
            lua = try LuaState(libraries: libraries)
            lua.stack.pushGlobalTable()
            lua.stack.push(bytes: bytecode)
            lua.stack.rawSetField("BYTECODE", in: -2)
            lua.stack.push("return 42")
            lua.stack.rawSetField("SOURCE", in: -2)
            lua.stack.push(directory)
            lua.stack.rawSetField("DIR", in: -2)
            lua.stack.pop()
        }

        deinit { try? FileManager.default.removeItem(atPath: directory) }

        /// Runs `snippet`, which returns what the loader gave (a function or value, or
        /// nil) and its message, and returns them as (loaded, message).
        func attempt(_ snippet: String) throws -> (loaded: Bool, message: String?) {
            try lua.run(snippet, chunkName: "=attempt", results: 2)
            defer { lua.stack.pop(2) }
            return (lua.stack.toBoolean(at: -2), lua.stack.toString(at: -1))
        }
    }

    /// Each returns (what loaded or nil, the error message).
    static let bytecodeRoutes: [(String, String)] = [
        ("load", "return load(BYTECODE)"),
        ("load, mode bt, with env", "return load(BYTECODE, '=bytecode', 'bt', {})"),
        ("load from a reader function", """
            local pieces = { BYTECODE:sub(1, 5), BYTECODE:sub(6) }
            local i = 0
            return load(function () i = i + 1 return pieces[i] end)
            """),
        ("loadfile", "return loadfile(DIR .. '/compiled.lua')"),
        ("loadfile, mode bt", "return loadfile(DIR .. '/compiled.lua', 'bt')"),
        ("dofile", "local ok, result = pcall(dofile, DIR .. '/compiled.lua') return ok and result, result"),
        ("require", """
            package.path = DIR .. '/?.lua'
            local ok, result = pcall(require, 'compiled')
            return ok and result, result
            """),
    ]

    @Test("bytecode is refused by every loader of the modules' state, with a message that says why", arguments: bytecodeRoutes)
    func bytecodeRefused(route: String, snippet: String) throws {
        let files = try Files()
        let (loaded, message) = try files.attempt(snippet)
        #expect(!loaded, "\(route) loaded bytecode")
        #expect(message?.contains(Self.refusal) == true, "\(route): \(message ?? "no message")")
    }

    @Test("the messages name the file, and require's says which module", arguments: [
        ("loadfile", "return loadfile(DIR .. '/compiled.lua')", "/compiled.lua: " + refusal),
        ("require", "package.path = DIR .. '/?.lua' return pcall(require, 'compiled')",
         "error loading module 'compiled' from file '"),
    ])
    func bytecodeMessages(route: String, snippet: String, expected: String) throws {
        let files = try Files()
        let (_, message) = try files.attempt(snippet)
        #expect(message?.contains(expected) == true, "\(route): \(message ?? "no message")")
    }

    @Test("a mode without 't' is refused: it could only load bytecode", arguments: [
        "return load(BYTECODE, '=b', 'b')", "return load(SOURCE, '=b', 'b')", "return loadfile(DIR .. '/compiled.lua', 'b')",
    ])
    func binaryModeRefused(snippet: String) throws {
        let files = try Files()
        let (loaded, message) = try files.attempt(snippet)
        #expect(!loaded)
        #expect(message == "load mode 'b' refused: " + Self.refusal)
    }

    @Test("the config's library set refuses bytecode through load too")
    func safeStateRefuses() throws {
        let files = try Files(libraries: .safe)
        for (_, snippet) in Self.bytecodeRoutes.prefix(3) {
            let (loaded, message) = try files.attempt(snippet)
            #expect(!loaded)
            #expect(message == Self.refusal)
        }
    }

    @Test("source still loads through every loader, with its chunk name, mode and env", arguments: [LuaState.Libraries.all, .safe])
    func sourceLoads(libraries: LuaState.Libraries) throws {
        let files = try Files(libraries: libraries)
        try files.lua.run("""
            assert(load(SOURCE)() == 42)
            assert(load(SOURCE, '=s', 'bt')() == 42)
            assert(load(SOURCE, '=s', 't')() == 42)
            assert(load('return x', '=s', 't', { x = 7 })() == 7)
            assert(load('return SOURCE', '=s', 't')() == SOURCE, 'without env: the globals')
            assert(not pcall(load('return SOURCE', '=s', 't', nil)), 'an explicit nil env is kept')
            local pieces, i = { 'return ', '4', '2' }, 0
            assert(load(function () i = i + 1 return pieces[i] end)() == 42)
            local f, err = load('x = = 1', '=named')
            assert(f == nil and err:find('^named:1:'), err)
            f, err = load(function () return {} end)
            assert(f == nil and err:find('reader function must return a string'), err)
            """, chunkName: "=source")
        guard libraries == .all else { return }
        try files.lua.run("""
            assert(loadfile(DIR .. '/source.lua')() == 42)
            assert(loadfile(DIR .. '/source.lua', 't', {})() == 42)
            assert(dofile(DIR .. '/source.lua') == 42)
            local f, err = loadfile(DIR .. '/missing.lua')
            assert(f == nil and err:find('^cannot open '), err)
            package.path = DIR .. '/?.lua'
            local value, path = require('source')
            assert(value == 42 and path == DIR .. '/source.lua', tostring(path))
            local ok, message = pcall(require, 'missing')
            assert(not ok and message:find("no file '" .. DIR .. "/missing.lua'", 1, true), message)
            """, chunkName: "=source")
    }

    @Test("string.dump is gone from both library sets, also as a string method", arguments: [LuaState.Libraries.all, .safe])
    func noDump(libraries: LuaState.Libraries) throws {
        let lua = try LuaState(libraries: libraries)
        try lua.run("return string.dump == nil and ('').dump == nil", chunkName: "=dump", results: 1)
        #expect(lua.stack.toBoolean(at: -1))
        lua.stack.pop()
    }

    @Test("C modules stay loadable in the modules' state (Prosody's util library has some)")
    func cModulesStay() throws {
        let lua = try LuaState(libraries: .all)
        try lua.run("return #package.searchers == 4 and type(package.loadlib) == 'function'", chunkName: "=c", results: 1)
        #expect(lua.stack.toBoolean(at: -1))
        lua.stack.pop()
    }

    @Test("LuaStack.load, behind the config's Include and file runs, refuses bytecode with the same message")
    func swiftLoad() throws {
        let lua = try LuaState(libraries: .safe)
        let bytecode = try Bytecode.compile("return 42")
        let failure: LuaError? = bytecode.withUnsafeBytes { bytes in
            do throws(LuaError) {
                try lua.stack.load(bytes, chunkName: "=compiled")
                return nil
            } catch {
                return error
            }
        }
        let error = try #require(failure)
        #expect(error.kind == .syntax)
        #expect(error.message == Self.refusal)
        #expect(lua.stack.top == 0)
    }
}

import Foundation
import Testing

/// Debian's lua5.4 package: the interpreter and the compiler.
enum StandaloneLua {
    static let interpreter = "/usr/bin/lua5.4"
    static let compiler = "/usr/bin/luac5.4"
    static var isInstalled: Bool {
        FileManager.default.isExecutableFile(atPath: interpreter) && FileManager.default.isExecutableFile(atPath: compiler)
    }
}

/// The module API is real Lua (Sources/NetHostLua/ModuleAPI/*.lua,
/// embedded at build time): Lua's own compiler checks it, and Lua's own
/// interpreter runs it on its own with stand-ins for the host
/// (Tests/Lua/moduleapi_test.lua), as Prosody's core/moduleapi.lua can be.
@Suite("Module API as Lua files", .enabled(if: StandaloneLua.isInstalled, "needs lua5.4 and luac5.4 (scripts/install-deps --test)"))
struct ModuleAPILuaTests {
    static let lua = StandaloneLua.interpreter
    static let luac = StandaloneLua.compiler

    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let chunks = packageRoot + "/Sources/NetHostLua/ModuleAPI"

    /// Runs a program to its end; its status and what it printed.
    static func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output)
    }

    @Test("each chunk compiles with luac -p", arguments: ["events.lua", "moduleapi.lua", "options.lua", "modulemanager.lua"])
    func compiles(file: String) throws {
        let result = try Self.run(Self.luac, ["-p", Self.chunks + "/" + file])
        #expect(result.status == 0, "\(result.output)")
    }

    @Test("the chunks run under plain lua5.4: load, hooks, timers, services, depends, options, unload")
    func runsOnItsOwn() throws {
        let result = try Self.run(Self.lua, [Self.packageRoot + "/Tests/Lua/moduleapi_test.lua", Self.chunks])
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("16 passed, 0 failed"), "\(result.output)")
    }
}

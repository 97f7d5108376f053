import Foundation
import NetHostTestSupport
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging

/// The modules' Lua state, as the module runtime makes it, refuses bytecode through
/// every loader a module can reach, `module:require` included.
@Suite("Modules load Lua source only", .serialized)
struct ModuleBytecodeTests {
    /// Tries each loader on a bytecode file and on a source file beside the module,
    /// and logs one line per attempt: "attempt ROUTE refused|LOADED message".
    static let prober = #"""
        local dir = module:get_directory()
        local file = io.open(dir .. "/compiled.lua", "rb")
        local bytecode = file:read("a")
        file:close()
        package.path = dir .. "/?.lua"
        local function attempt(route, loaded, message)
            module:log("info", "attempt %s %s %s", route, loaded and "LOADED" or "refused", tostring(message))
        end
        local function protected(f, ...)
            local ok, result = pcall(f, ...)
            return ok and result, result
        end
        attempt("load", load(bytecode))
        attempt("loadfile", loadfile(dir .. "/compiled.lua"))
        attempt("dofile", protected(dofile, dir .. "/compiled.lua"))
        attempt("require", protected(require, "compiled"))
        attempt("module:require", protected(module.require, module, "compiled"))
        attempt("dump", string.dump, "string.dump")
        attempt("source-load", load("return 42")() == 42)
        attempt("source-loadfile", loadfile(dir .. "/source.lua")() == 42)
        attempt("source-dofile", dofile(dir .. "/source.lua") == 42)
        attempt("source-require", require("source") == 42)
        attempt("source-module:require", module:require("source") == 42)
        """#

    @Test("load, loadfile, dofile, require and module:require refuse bytecode and load source")
    func everyLoader() async throws {
        let fixture = try HostFixture(modules: ["prober": Self.prober])
        try Data(try Bytecode.compile("return 42")).write(to: URL(fileURLWithPath: fixture.directory + "/compiled.lua"))
        try "return 42".write(toFile: fixture.directory + "/source.lua", atomically: true, encoding: .utf8)
        let server = try await fixture.start(options: ["modules_enabled": .strings("prober")])
        await #expect(server.loadedModules == ["prober"], "\(server.problems.all)")
        let attempts = fixture.logs.all.filter { $0.contains("attempt ") }
        func line(_ route: String) -> String { attempts.first { $0.contains("attempt \(route) ") } ?? "\(route): not logged" }
        for route in ["load", "loadfile", "dofile", "require", "module:require"] {
            #expect(line(route).contains("refused"), "\(line(route))")
            #expect(line(route).contains(LuaSourceOnlyTests.refusal), "\(line(route))")
        }
        #expect(line("dump").contains("attempt dump refused"))
        for route in ["source-load", "source-loadfile", "source-dofile", "source-require", "source-module:require"] {
            #expect(line(route).contains("LOADED"), "\(line(route))")
        }
        await fixture.stop()
    }

    @Test("a module whose library is bytecode fails to load, and the problem says why")
    func requireOfBytecodeIsReported() async throws {
        let fixture = try HostFixture(modules: ["needsbinary": "local helper = module:require('helper')"])
        try Data(try Bytecode.compile("return {}")).write(to: URL(fileURLWithPath: fixture.directory + "/helper.lib.lua"))
        let server = try await fixture.start(options: ["modules_enabled": .strings("needsbinary")])
        await #expect(server.loadedModules.isEmpty)
        let problems = server.problems.all.joined(separator: "\n")
        #expect(problems.contains("helper.lib.lua: " + LuaSourceOnlyTests.refusal), "\(problems)")
        await fixture.stop()
    }
}

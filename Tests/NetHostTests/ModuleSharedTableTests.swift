import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging

/// `module:shared(path)`, with Prosody's paths: a relative path is completed
/// with the module's host and name, only as far as it needs.
@Suite("Module shared tables", .serialized)
struct ModuleSharedTableTests {
    @Test("'x' is the module's own table, 'other/x' module other's on the same host, 'a/b/c' and '/a/b/c' the absolute path")
    func pathsAsProsodyCompletesThem() throws {
        let owner = """
            module:shared("x").from = "owner"
            module:shared("/anywhere/at/all").from = "absolute"
            """
        let reader = """
            trace(tostring(module:shared("owner/x").from))
            trace(tostring(module:shared("x").from))
            trace(tostring(module:shared("anywhere/at/all").from))
            trace(tostring(module:shared("/*/owner/x").from))
            """
        let harness = try ModuleHarness(
            modules: ["owner": owner, "reader": reader],
            options: ["modules_enabled": .strings("owner", "reader")]
        )
        #expect(harness.traced == ["owner", "nil", "absolute", "owner"])
    }

    @Test("a per-host module's shared table is its host's: other/x finds module other on the same host")
    func relativePathsUseTheHost() throws {
        let owner = #"module:shared("x").from = "owner on " .. module.host"#
        let reader = #"trace(tostring(module:shared("owner/x").from))"#
        let harness = try ModuleHarness(
            modules: ["owner": owner, "reader": reader],
            options: [:],
            hosts: ["a.example": ["modules_enabled": .strings("owner", "reader")]]
        )
        #expect(harness.traced == ["owner on a.example"])
    }

    @Test("a table whose path ends in -cache keeps nothing alive")
    func cacheTablesAreWeak() throws {
        let module = """
            local cache = module:shared("things-cache")
            cache.entry = {}
            collectgarbage(); collectgarbage()
            trace(tostring(cache.entry))
            """
        let harness = try ModuleHarness(modules: ["m": module], options: ["modules_enabled": .strings("m")])
        #expect(harness.traced == ["nil"])
    }
}

/// The module API, written in Lua as Prosody's `core/moduleapi.lua` and
/// `core/modulemanager.lua` are: the files in `ModuleAPI/`, embedded at build
/// time (`Package.swift`, `.embedInCode`) so that the binary needs no file at run
/// time, while the sources stay real Lua that `luac -p` checks and `lua5.4` runs
/// on its own (Tests/Lua/moduleapi_test.lua).
///
/// Each chunk is called with the host's primitives and a table the chunks share;
/// they run in this order, and the last returns the loader the Swift module
/// manager calls.
enum ModuleAPIChunks {
    struct Chunk {
        let source: [UInt8]
        /// Lua's chunk name: what error messages and tracebacks call the file.
        let name: String
    }

    static let all: [Chunk] = [
        Chunk(source: PackageResources.events_lua, name: "=nethost.events"),
        Chunk(source: PackageResources.moduleapi_lua, name: "=nethost.moduleapi"),
        Chunk(source: PackageResources.options_lua, name: "=nethost.moduleapi.options"),
        Chunk(source: PackageResources.prosody_lua, name: "=nethost.prosody"),
        Chunk(source: PackageResources.metrics_lua, name: "=nethost.moduleapi.metrics"),
        Chunk(source: PackageResources.shared_lua, name: "=nethost.shared"),
        Chunk(source: PackageResources.modulemanager_lua, name: "=nethost.modulemanager"),
    ]
}

import Foundation
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostLua

/// Prosody searches `plugin_paths` before its own modules, which is how a user
/// replaces or patches a module the server ships: a file there wins over a
/// built-in of the same name, native or Lua, and the log and `nethost check` say so.
@Suite("Module search order: plugin_paths first")
struct ModuleSearchOrderTests {
    @Test("a Lua module in plugin_paths takes the place of a native module of the same name, with a note")
    func userModuleWinsOverNative() throws {
        let harness = try ModuleHarness(
            modules: ["demo_whoami": #"trace("the user's whoami on " .. module.host)"#],
            optionSource: FixedOptions(global: ["modules_enabled": .strings("demo_whoami")]),
            natives: [WhoAmIModule.self]
        )
        #expect(harness.traced == ["the user's whoami on *"])
        guard case .lua(let path, _)? = harness.manager.loaded[ModuleKey("demo_whoami")]?.module else {
            Issue.record("whoami is not the Lua module: \(String(describing: harness.manager.loaded[ModuleKey("demo_whoami")]?.module))")
            return
        }
        #expect(path == harness.directory + "/mod_demo_whoami.lua")
        #expect(harness.manager.notes.all == [
            "module 'demo_whoami' is loaded from \(path) (plugin_paths), in place of NetHost's built-in native module",
        ])
        #expect(harness.count("in place of NetHost's built-in native module") == 1)
        #expect(harness.count("loaded Lua module 'demo_whoami' from \(path)") == 1)
    }

    @Test("without a file of that name in plugin_paths the native module loads, and nothing is noted")
    func nativeModuleWithoutUserFile() throws {
        let harness = try ModuleHarness(
            modules: [:], optionSource: FixedOptions(global: ["modules_enabled": .strings("demo_whoami")]),
            natives: [WhoAmIModule.self]
        )
        guard case .native? = harness.manager.loaded[ModuleKey("demo_whoami")]?.module else {
            Issue.record("whoami did not load as the native module")
            return
        }
        #expect(harness.manager.notes.all.isEmpty)
    }

    @Test("a Lua module in plugin_paths takes the place of a shipped Lua module of the same name, with a note")
    func userModuleWinsOverShippedLua() throws {
        let shipped = NSTemporaryDirectory() + "nethost-shipped-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: shipped, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: shipped) }
        try #"trace("the shipped echo")"#.write(toFile: shipped + "/mod_demo_echo.lua", atomically: true, encoding: .utf8)
        try #"trace("the shipped chat")"#.write(toFile: shipped + "/mod_demo_chat.lua", atomically: true, encoding: .utf8)

        let harness = try ModuleHarness(
            modules: ["demo_echo": #"trace("the user's echo")"#],
            optionSource: FixedOptions(global: ["modules_enabled": .strings("demo_echo", "demo_chat")]),
            shippedModules: shipped
        )
        #expect(harness.traced == ["the user's echo", "the shipped chat"])
        #expect(harness.manager.notes.all == [
            "module 'demo_echo' is loaded from \(harness.directory)/mod_demo_echo.lua (plugin_paths), "
                + "in place of NetHost's built-in Lua module \(shipped)/mod_demo_echo.lua",
        ])
    }
}

/// A config shared with Prosody, or moved from it, enables Prosody's own XMPP
/// modules; NetHost does not host them, and says so once, as a note.
@Suite("Prosody's XMPP modules in modules_enabled")
struct ProsodyXMPPModuleTests {
    @Test("Prosody's XMPP modules are noted once, not failures; an unknown module still fails")
    func xmppModulesAreNoted() throws {
        let harness = try ModuleHarness(
            modules: ["mine": #"trace("mine")"#],
            optionSource: FixedOptions(
                global: ["modules_enabled": .strings("roster", "saslauth", "mine", "no_such_module")],
                hosts: ["localhost": ["modules_enabled": .strings("disco", "roster")]]
            )
        )
        #expect(harness.traced == ["mine"])
        #expect(harness.manager.notes.all == [
            "Prosody's XMPP modules, which NetHost does not host, are not loaded: roster, saslauth, disco",
        ])
        let problems = harness.manager.problems.all
        #expect(problems.count == 1 && problems.first?.hasPrefix("module 'no_such_module' failed to load") == true, "\(problems)")
        #expect(harness.count("Prosody's XMPP modules, which NetHost does not host") == 1)
    }

    @Test("a name is Prosody's when Prosody 0.12 ships it or Prosody's module folder has it")
    func recognition() throws {
        let folder = NSTemporaryDirectory() + "nethost-prosody-modules-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try "".write(toFile: folder + "/mod_newer_feature.lua", atomically: true, encoding: .utf8)
        let modules = ProsodyXMPPModules(folders: [folder])
        #expect(modules.contains("roster"))
        #expect(modules.contains("newer_feature"))
        #expect(!modules.contains("demo_echo"))
        #expect(!modules.contains("my_service"))
    }
}

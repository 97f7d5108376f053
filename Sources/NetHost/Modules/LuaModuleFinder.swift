import NetHostConfig
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Finds `mod_NAME.lua` or `mod_NAME/mod_NAME.lua` in the plugin paths, then
/// in the modules shipped with NetHost, as Prosody's module loader does.
///
/// The plugin paths come first, before the built-in native modules too: in
/// Prosody a module in `plugin_paths` takes the place of the server's own of the
/// same name, which is how people patch or replace a shipped module.
public struct LuaModuleFinder: Sendable {
    /// The config's `plugin_paths`: the user's modules.
    public let pluginPaths: [String]
    /// The folder of the Lua modules shipped with NetHost, if any.
    public let shippedModules: String?
    public var searchPaths: [String] { pluginPaths + (shippedModules.map { [$0] } ?? []) }

    public init(pluginPaths: [String], shippedModules: String?) {
        self.pluginPaths = pluginPaths
        self.shippedModules = shippedModules
    }

    /// The config's `plugin_paths`, relative ones taken against `directory` (the config's folder).
    /// - Throws: ``OptionValueError`` when the option is not a list of folder names.
    public static func pluginPaths(in options: any OptionSource, relativeTo directory: String) throws(OptionValueError) -> [String] {
        (try options.stringList(ModuleOptions.pluginPaths) ?? []).map { path in
            path.hasPrefix("/") ? path : directory + "/" + path
        }
    }

    /// Whether a name could be a module name at all (no path tricks).
    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy { byte in
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
                || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
                || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".")
        } && !name.hasPrefix(".")
    }

    /// The path of the module's file, or nil with the places looked in.
    public func find(_ name: String) -> (path: String?, lookedIn: [String]) {
        Self.find(name, in: searchPaths)
    }

    /// The user's own file for the module, if a plugin path has one.
    public func findInPluginPaths(_ name: String) -> String? {
        Self.find(name, in: pluginPaths).path
    }

    private static func find(_ name: String, in searchPaths: [String]) -> (path: String?, lookedIn: [String]) {
        var candidates: [String] = []
        for directory in searchPaths {
            for candidate in ["\(directory)/mod_\(name).lua", "\(directory)/mod_\(name)/mod_\(name).lua"] {
                candidates.append(candidate)
                if access(candidate, R_OK) == 0 {
                    return (candidate, candidates)
                }
            }
        }
        return (nil, candidates)
    }
}

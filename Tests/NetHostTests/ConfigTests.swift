import Foundation
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging

/// The config loader's tests, grouped in suites below (`ConfigTests/...`).
enum ConfigTests {}

/// A temporary folder to write config files into; removed when released.
final class ConfigFolder {
    let path: String

    init() throws {
        var template = Array((FileManager.default.temporaryDirectory.path + "/nethost-config-XXXXXX").utf8CString)
        guard let created = mkdtemp(&template) else { throw CocoaError(.fileWriteUnknown) }
        path = String(cString: created)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }

    /// Writes `contents` to `relativePath`, creating folders on the way; returns the full path.
    @discardableResult
    func write(_ relativePath: String, _ contents: String) throws -> String {
        let full = path + "/" + relativePath
        let folder = (full as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try contents.write(toFile: full, atomically: true, encoding: .utf8)
        return full
    }

    func file(_ relativePath: String) -> String { path + "/" + relativePath }

    /// Loads `relativePath` (default `prosody.cfg.lua`) from this folder.
    func load(_ relativePath: String = "prosody.cfg.lua", environment: [String: String] = [:]) throws(ConfigError) -> LoadedConfig {
        try ConfigLoader.load(path: file(relativePath), environment: environment)
    }
}

extension ConfigTests {
    /// Loads config source that needs no other files.
    static func load(_ source: String, environment: [String: String] = [:]) throws(ConfigError) -> LoadedConfig {
        try ConfigLoader.load(source: source, path: "prosody.cfg.lua", environment: environment)
    }

    static func configuration(_ source: String, environment: [String: String] = [:]) throws -> Configuration {
        try load(source, environment: environment).configuration
    }

    /// The error a config that must fail produces.
    static func loadError(_ source: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> ConfigError {
        try #require(throws: ConfigError.self, sourceLocation: sourceLocation) { try load(source) }
    }

    static func list(_ strings: String...) -> ConfigValue {
        .table(ConfigTable(array: strings.map { .string($0) }))
    }
}

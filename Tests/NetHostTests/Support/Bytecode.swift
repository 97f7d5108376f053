import Foundation

/// Real Lua 5.4 bytecode, for the tests that check no loader accepts it.
///
/// Every state NetHost makes has lost `string.dump`, so the bytes come from the
/// system's own compiler, `luac5.4` (Debian's lua5.4 package, which
/// `scripts/install-deps --test` installs): nothing outside the Lua bridge
/// touches the Lua C API, the tests included.
enum Bytecode {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// The precompiled form of the chunk `source`.
    static func compile(_ source: String) throws -> [UInt8] {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("nethost-bytecode-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let input = folder.appendingPathComponent("chunk.lua")
        let output = folder.appendingPathComponent("chunk.luac")
        try source.write(to: input, atomically: true, encoding: .utf8)
        let compiler = Process()
        compiler.executableURL = URL(fileURLWithPath: "/usr/bin/luac5.4")
        compiler.arguments = ["-o", output.path, input.path]
        let errors = Pipe()
        compiler.standardError = errors
        do {
            try compiler.run()
        } catch {
            throw Failure(description: "luac5.4 did not start (install lua5.4: scripts/install-deps --test): \(error)")
        }
        compiler.waitUntilExit()
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        guard compiler.terminationStatus == 0 else { throw Failure(description: "luac5.4: \(message)") }
        let bytes = [UInt8](try Data(contentsOf: output))
        guard bytes.first == 0x1B else { throw Failure(description: "luac5.4 wrote no bytecode") }
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

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// File access for the config loader: reading, path arithmetic and globs,
/// done in Swift so the config's Lua state never gets `io`.
package enum ConfigFiles {
    /// Why a file could not be read, in the words of the OS ("No such file or directory").
    package struct ReadError: Error, CustomStringConvertible {
        package var description: String
    }

    /// The most a config file (or a file read with `FileContents`) may hold.
    static let sizeLimit = 16 << 20

    package static func read(_ path: String) throws(ReadError) -> [UInt8] {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw ReadError(description: errorText(errno)) }
        defer { close(descriptor) }
        var contents: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { systemRead(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                let code = errno
                if code == EINTR { continue }
                throw ReadError(description: errorText(code))
            }
            if count == 0 { return contents }
            contents.append(contentsOf: chunk[..<count])
            guard contents.count <= sizeLimit else {
                throw ReadError(description: "larger than \(sizeLimit >> 20) MiB")
            }
        }
    }

    /// The folder part of a path, with its trailing slash: "conf/a.lua" gives
    /// "conf/", "a.lua" gives "" (the working directory), "/a.lua" gives "/".
    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "" }
        return String(path[...slash])
    }

    /// `path` as seen from `directory` (a `directory(of:)` result); absolute paths stay.
    static func resolve(_ path: String, relativeTo directory: String) -> String {
        path.hasPrefix("/") ? path : directory + path
    }

    /// The file's real path, to recognise one file reached by two names
    /// (Include cycles); the path itself when it cannot be resolved.
    static func canonical(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// Whether an Include names files by a pattern (as Prosody: `*` or `?`).
    static func isPattern(_ path: String) -> Bool {
        path.contains("*") || path.contains("?")
    }

    /// The files matching a shell pattern, sorted by their bytes; folders and
    /// hidden files (a leading dot) are left out. No match is an empty list.
    static func expand(_ pattern: String) throws(ReadError) -> [String] {
        var result = glob_t()
        defer { globfree(&result) }
        let status = glob(pattern, GLOB_MARK, nil, &result)
        switch status {
        case 0:
            break
        case GLOB_NOMATCH:
            return []
        default:
            throw ReadError(description: "cannot expand the pattern (glob error \(status))")
        }
        var paths: [String] = []
        for index in 0 ..< Int(result.gl_pathc) {
            guard let pointer = result.gl_pathv[index] else { continue }
            let path = String(cString: pointer)
            if !path.hasSuffix("/") { paths.append(path) }
        }
        return paths.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
    }

    private static func errorText(_ code: Int32) -> String {
        guard let text = strerror(code) else { return "error \(code)" }
        return String(cString: text)
    }
}

/// `read(2)`, named apart from `ConfigFiles.read`.
private func systemRead(_ descriptor: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
    read(descriptor, buffer, count)
}

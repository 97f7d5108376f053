#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Why logging could not be set up: a `log` option of the wrong shape, or a log
/// file that cannot be opened.
///
/// The description lists every problem found, one per line, each with the place
/// in the option it comes from (`log[2].levels.min`), so that the caller can
/// report it as a config error as it stands.
public struct LoggingError: Error, Hashable, Sendable {
    enum Problem: Hashable, Sendable {
        /// `path` holds a `got` where an `expected` belongs.
        case wrongType(path: String, expected: String, got: String)
        /// A level name that is neither Prosody's nor swift-log's.
        case unknownLevel(path: String, name: String)
        /// A key that has no meaning where it stands.
        case unknownKey(path: String, key: String)
        /// A sink table's field placed directly in `log`, as in
        /// `log = { to = "file", ... }`, where a list of tables was meant.
        case sinkFieldOutsideSink(key: String)
        case missingKey(path: String, key: String)
        case emptyFileName(path: String)
        /// `levels` that select nothing.
        case noLevels(path: String)
        /// `min` above `max`.
        case invertedRange(path: String, min: String, max: String)
    }

    struct FileFailure: Error, Hashable, Sendable {
        var path: String
        var errno: Int32
    }

    enum Kind: Hashable, Sendable {
        case invalidOption([Problem])
        case cannotOpenFiles([FileFailure])
    }

    let kind: Kind

    init(_ kind: Kind) {
        self.kind = kind
    }

    /// One readable line per problem.
    public var problems: [String] {
        switch kind {
        case .invalidOption(let problems):
            return problems.map(\.description)
        case .cannotOpenFiles(let failures):
            return failures.map { "cannot open log file '\($0.path)': \(Self.reason($0.errno))" }
        }
    }

    /// Paths of the log files that could not be opened (empty for a config error).
    public var unopenableFiles: [String] {
        if case .cannotOpenFiles(let failures) = kind { return failures.map(\.path) }
        return []
    }

    static func reason(_ code: Int32) -> String {
        switch code {
        case EACCES, EPERM: return "permission denied"
        case ENOENT: return "no such file or directory"
        case ENOTDIR: return "a part of the path is not a directory"
        case EISDIR: return "is a directory"
        case EROFS: return "read-only file system"
        case ENOSPC: return "no space left on device"
        default:
            guard let text = strerror(code) else { return "error \(code)" }
            return String(cString: text)
        }
    }
}

extension LoggingError: CustomStringConvertible {
    public var description: String {
        let lines = problems
        switch kind {
        case .invalidOption:
            if lines.count == 1 { return "invalid 'log' option: \(lines[0])" }
            return "invalid 'log' option:\n" + lines.map { "  - \($0)" }.joined(separator: "\n")
        case .cannotOpenFiles:
            return lines.joined(separator: "\n")
        }
    }
}

extension LoggingError.Problem: CustomStringConvertible {
    var description: String {
        switch self {
        case .wrongType(let path, let expected, let got):
            return "\(path): expected \(expected), got a \(got)"
        case .unknownLevel(let path, let name):
            return "\(path): unknown level '\(name)' (expected \(LogLevelName.expected))"
        case .unknownKey(let path, let key):
            return "\(path): unknown key '\(key)'"
        case .sinkFieldOutsideSink(let key):
            return "log: '\(key)' belongs in a sink table; write log = { { \(key) = ..., ... } } (a list of tables)"
        case .missingKey(let path, let key):
            return "\(path): missing '\(key)'"
        case .emptyFileName(let path):
            return "\(path): empty file name"
        case .noLevels(let path):
            return "\(path): selects no level"
        case .invertedRange(let path, let min, let max):
            return "\(path): min '\(min)' is above max '\(max)'"
        }
    }
}

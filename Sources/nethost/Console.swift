import Foundation

/// The command's own output, apart from the log: a report on stdout and a
/// one-line error on stderr, printed by the standard library. Standard error
/// is a `FileHandle` stream because the C `stderr` global is not safe to
/// share in Swift 6.
enum Console {
    static func print(_ text: String) {
        Swift.print(text)
    }

    /// Exactly `text`, no newline added (a generated file ends as it is meant to).
    static func write(_ text: String) {
        Swift.print(text, terminator: "")
    }

    static func error(_ text: String) {
        var standardError = StandardError()
        Swift.print(text, to: &standardError)
    }

    private struct StandardError: TextOutputStream {
        mutating func write(_ string: String) {
            FileHandle.standardError.write(Data(string.utf8))
        }
    }
}

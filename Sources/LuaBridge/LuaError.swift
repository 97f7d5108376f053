/// An error raised by Lua code, or raised into Lua from Swift.
public struct LuaError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable, Equatable {
        /// The chunk did not compile.
        case syntax
        /// Lua code raised an error while running.
        case runtime
        /// The Lua allocator refused memory.
        case memory
        /// A file could not be read.
        case file
    }

    public let kind: Kind
    /// The error message, usually starting with "chunkname:line:".
    public let message: String
    /// Lua's stack traceback at the point of the error, when there was one.
    public let traceback: String?

    public init(kind: Kind, message: String, traceback: String? = nil) {
        self.kind = kind
        self.message = message
        self.traceback = traceback
    }

    public var description: String { message }

    /// The message with its traceback, for logs.
    public var fullDescription: String {
        guard let traceback, !traceback.isEmpty else { return message }
        return message + "\n" + traceback
    }

    /// Splits the text produced by the traceback handler into message and traceback.
    static func fromHandlerOutput(_ text: String, kind: Kind) -> LuaError {
        let marker = "\nstack traceback:"
        var index = text.startIndex
        while index < text.endIndex {
            if text[index...].hasPrefix(marker) {
                let message = String(text[..<index])
                let traceback = String(text[text.index(after: index)...])
                return LuaError(kind: kind, message: message, traceback: traceback)
            }
            index = text.index(after: index)
        }
        return LuaError(kind: kind, message: text)
    }
}

/// Thrown by a Swift function called from Lua to make Lua raise `message`.
/// Any other Swift error is raised with its description.
public struct LuaArgumentError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }

    /// The usual "bad argument #N to 'name' (reason)" message.
    public init(argument: Int32, function: String, _ reason: String) {
        self.message = "bad argument #\(argument) to '\(function)' (\(reason))"
    }

    public var description: String { message }
}

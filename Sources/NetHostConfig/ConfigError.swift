/// Why a config file could not be loaded. There is only ever one: loading
/// stops at the first error, as Prosody does.
public struct ConfigError: Error, Sendable, Hashable, CustomStringConvertible {
    enum Reason: Sendable, Hashable {
        /// The main config file could not be read.
        case unreadable(file: String, reason: String)
        /// A file did not compile.
        case syntax
        /// Lua code raised an error while the config ran (including errors
        /// raised by the directives: a missing Include, a bad host name).
        case runtime
        /// An option holds a value that cannot be an option (a function, a cycle).
        case invalidValue(option: String)
        /// The Lua state for the config could not be created.
        case lua
    }

    /// What kind of error this is, for callers that react differently.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        let name: String
        public static let unreadable = Code(name: "unreadable")
        public static let syntax = Code(name: "syntax")
        public static let runtime = Code(name: "runtime")
        public static let invalidValue = Code(name: "invalidValue")
        public static let lua = Code(name: "lua")
        public var description: String { name }
    }

    let reason: Reason
    /// The file the error is in, when known.
    public let file: String?
    /// The line the error is on, when known.
    public let line: Int?
    /// The message without its position.
    public let message: String

    init(_ reason: Reason, file: String?, line: Int?, message: String) {
        self.reason = reason
        self.file = file
        self.line = line
        self.message = message
    }

    init(_ reason: Reason, at location: ConfigLocation?, message: String) {
        self.init(reason, file: location?.file, line: location?.line, message: message)
    }

    public var code: Code {
        switch reason {
        case .unreadable: return .unreadable
        case .syntax: return .syntax
        case .runtime: return .runtime
        case .invalidValue: return .invalidValue
        case .lua: return .lua
        }
    }

    /// Where the error is, when both file and line are known.
    public var location: ConfigLocation? {
        guard let file, let line else { return nil }
        return ConfigLocation(file: file, line: line)
    }

    /// "file:line: message", or "file: message" when there is no line.
    public var description: String {
        switch (file, line) {
        case let (file?, line?): return "\(file):\(line): \(message)"
        case let (file?, nil): return "\(file): \(message)"
        default: return message
        }
    }
}

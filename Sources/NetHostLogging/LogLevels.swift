import Logging

/// A set of swift-log levels: the records one sink accepts.
///
/// Stored as a bit mask so that a sink decides in one AND whether a record is
/// for it.
public struct LogLevels: Sendable, Hashable {
    private var mask: UInt8

    /// No level at all.
    public init() {
        self.mask = 0
    }

    public init(_ levels: some Sequence<Logger.Level>) {
        self.mask = 0
        for level in levels { self.insert(level) }
    }

    /// `level` and every level above it, up to `.critical`.
    public static func atLeast(_ level: Logger.Level) -> LogLevels {
        LogLevels(Logger.Level.allCases.filter { $0 >= level })
    }

    /// Every level in `range`, both ends included.
    public static func range(_ range: ClosedRange<Logger.Level>) -> LogLevels {
        LogLevels(Logger.Level.allCases.filter { range.contains($0) })
    }

    /// What "all levels" means in Prosody: debug and above. `.trace` is only
    /// ever logged when a sink asks for it by name.
    public static let all = LogLevels.atLeast(.debug)

    public func contains(_ level: Logger.Level) -> Bool {
        mask & Self.bit(level) != 0
    }

    public mutating func insert(_ level: Logger.Level) {
        mask |= Self.bit(level)
    }

    public mutating func formUnion(_ other: LogLevels) {
        mask |= other.mask
    }

    public func union(_ other: LogLevels) -> LogLevels {
        var result = self
        result.formUnion(other)
        return result
    }

    public var isEmpty: Bool { mask == 0 }

    /// The levels in the set, lowest first.
    public var levels: [Logger.Level] {
        Logger.Level.allCases.filter { contains($0) }
    }

    /// The lowest level in the set, `nil` when the set is empty.
    public var minimum: Logger.Level? {
        Logger.Level.allCases.first { contains($0) }
    }

    static func bit(_ level: Logger.Level) -> UInt8 {
        switch level {
        case .trace: return 1 << 0
        case .debug: return 1 << 1
        case .info: return 1 << 2
        case .notice: return 1 << 3
        case .warning: return 1 << 4
        case .error: return 1 << 5
        case .critical: return 1 << 6
        }
    }
}

extension LogLevels: ExpressibleByArrayLiteral {
    public init(arrayLiteral levels: Logger.Level...) {
        self.init(levels)
    }
}

extension LogLevels: CustomStringConvertible {
    /// `info...critical` for a contiguous run, else the names: `warn, error`.
    public var description: String {
        let levels = self.levels
        guard let first = levels.first, let last = levels.last else { return "none" }
        if levels.count == 1 { return LogLevelName.name(of: first) }
        let contiguous = levels == Logger.Level.allCases.filter { $0 >= first && $0 <= last }
        if contiguous && levels.count > 2 {
            return "\(LogLevelName.name(of: first))...\(LogLevelName.name(of: last))"
        }
        return levels.map(LogLevelName.name(of:)).joined(separator: ", ")
    }
}

/// Level names as they appear in configs and in log lines.
///
/// Prosody has four levels: debug, info, warn, error. swift-log has seven. A
/// Prosody name stands for a band of swift-log levels, so that nothing
/// swift-log emits falls between two Prosody levels: `info` covers `.info` and
/// `.notice`, `error` covers `.error` and `.critical`. swift-log's own names
/// (trace, notice, warning, critical) are accepted too and stand for exactly
/// their level.
enum LogLevelName {
    /// The swift-log levels a configured level name stands for.
    static func band(named name: String) -> ClosedRange<Logger.Level>? {
        switch name.lowercased() {
        case "trace": return .trace ... .trace
        case "debug": return .debug ... .debug
        case "info": return .info ... .notice
        case "notice": return .notice ... .notice
        case "warn", "warning": return .warning ... .warning
        case "error": return .error ... .critical
        case "critical": return .critical ... .critical
        default: return nil
        }
    }

    /// The name printed in a log line: Prosody's where it has one.
    static func name(of level: Logger.Level) -> String {
        switch level {
        case .trace: return "trace"
        case .debug: return "debug"
        case .info: return "info"
        case .notice: return "notice"
        case .warning: return "warn"
        case .error: return "error"
        case .critical: return "critical"
        }
    }

    static let expected = "debug, info, warn or error (or trace, notice, warning, critical)"
}

import Logging

/// Where log records go, and which records go where: the `log` option once read.
///
/// Build one from the config with ``init(log:baseDirectory:)``, adjust it (for
/// example with ``overrideConsoleLevel(minimum:)`` for `--log-level`), then
/// open it with ``Logging/LoggingSystem/makeLogHandlerFactory(_:)``.
public struct LoggingConfiguration: Sendable, Hashable {
    /// A terminal stream.
    public enum ConsoleStream: Sendable, Hashable {
        case standardError
        case standardOutput
    }

    public enum Destination: Sendable, Hashable {
        /// `*console`, `*stderr` (standard error) or `*stdout` (standard output).
        case console(ConsoleStream)
        /// A file, appended to. The path is absolute once the config has been read
        /// (relative names are resolved against the config file's folder).
        case file(path: String)
        /// The system log, through `openlog(3)` and `syslog(3)`.
        case syslog
    }

    /// One destination and the levels it receives.
    public struct Sink: Sendable, Hashable {
        public var destination: Destination
        public var levels: LogLevels

        public init(destination: Destination, levels: LogLevels) {
            self.destination = destination
            self.levels = levels
        }
    }

    /// Every destination once, in the order the config first names them. Two rules
    /// naming one destination are merged (their levels joined), so a record is
    /// written to a destination at most once.
    public var sinks: [Sink]

    /// Things in the `log` option that were accepted but will have no effect, such
    /// as a sink type only a Prosody module provides (`to = "json"`). Log them once
    /// logging is up.
    public var warnings: [String]

    /// The name syslog records carry (Prosody's `syslog_name`).
    public var syslogIdentifier: String

    /// The facility syslog records are filed under (Prosody's `syslog_facility`).
    public var syslogFacility: SyslogFacility

    /// A configuration built by hand; sinks with one destination are merged as
    /// ``add(_:)`` does.
    public init(
        sinks: [Sink],
        warnings: [String] = [],
        syslogIdentifier: String = "nethost",
        syslogFacility: SyslogFacility = .daemon
    ) {
        self.sinks = []
        self.warnings = warnings
        self.syslogIdentifier = syslogIdentifier
        self.syslogFacility = syslogFacility
        for sink in sinks { self.add(sink) }
    }

    /// What NetHost does with no `log` option: the console (standard error) at info
    /// and above.
    public static let `default` = LoggingConfiguration(sinks: [
        Sink(destination: .console(.standardError), levels: .atLeast(.info))
    ])

    /// Adds a sink, merging it into an existing one with the same destination.
    public mutating func add(_ sink: Sink) {
        if let index = sinks.firstIndex(where: { $0.destination == sink.destination }) {
            sinks[index].levels.formUnion(sink.levels)
        } else {
            sinks.append(sink)
        }
    }

    /// The command line's `--log-level`: every console sink receives `minimum` and
    /// everything above it, whatever the config said. File and syslog sinks keep
    /// their levels, and no console sink is added where the config has none.
    public mutating func overrideConsoleLevel(minimum: Logger.Level) {
        for index in sinks.indices {
            if case .console = sinks[index].destination {
                sinks[index].levels = .atLeast(minimum)
            }
        }
    }

    /// A copy with ``overrideConsoleLevel(minimum:)`` applied.
    public func overridingConsoleLevel(minimum: Logger.Level) -> LoggingConfiguration {
        var copy = self
        copy.overrideConsoleLevel(minimum: minimum)
        return copy
    }

    /// The swift-log level a level name stands for, for `--log-level` and the like:
    /// Prosody's debug, info, warn, error, and swift-log's trace, notice, warning,
    /// critical. `nil` for anything else.
    public static func level(named name: String) -> Logger.Level? {
        LogLevelName.band(named: name)?.lowerBound
    }

    /// The level names ``level(named:)`` accepts, for help and error texts.
    public static let levelNames = ["trace", "debug", "info", "notice", "warn", "warning", "error", "critical"]
}

/// A syslog facility, named as in `syslog.conf(5)`.
public enum SyslogFacility: String, Sendable, Hashable, CaseIterable {
    case user, mail, daemon, auth, syslog, lpr, news, uucp, cron, authpriv, ftp
    case local0, local1, local2, local3, local4, local5, local6, local7

    /// `nil` for a name that is not a facility.
    public init?(name: String) {
        self.init(rawValue: name.lowercased())
    }
}

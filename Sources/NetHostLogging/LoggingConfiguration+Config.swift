import Logging
import NetHostConfig

extension LoggingConfiguration {
    /// Reads Prosody's `log` option in any of its shapes.
    ///
    /// - `nil` (no option; also `false`): the console at info and above.
    /// - A string: `"*console"`, `"*stderr"`, `"*stdout"`, `"*syslog"`, `"*nowhere"`,
    ///   or a file name: that sink at info and above.
    /// - A level-to-sink map, `{ info = "prosody.log", error = "prosody.err" }`:
    ///   each sink gets its level and everything above it.
    /// - A list of sink tables, `{ { to = "file", filename = "x.log", levels = { min = "info" } } }`,
    ///   where `to` is console, stderr, stdout, file, syslog or nowhere and `levels`
    ///   is a level name (that level only, as in Prosody), a list of names, or
    ///   `{ min = ..., max = ... }` (either end may be left out); no `levels` means
    ///   debug and above. A string in the list (`"*syslog"`) is a sink at info and above.
    ///
    /// The map and the list may be mixed in one table, as Prosody allows.
    ///
    /// Where NetHost departs from Prosody, on purpose:
    /// - a bare sink (`log = "*console"`, or `"*syslog"` in a list) starts at info, not
    ///   debug, like the default; `--log-level debug` lowers the console;
    /// - `{ max = "warn" }` alone means debug up to warn (Prosody keeps only warn);
    /// - the console is standard error (`*stdout` or `to = "stdout"` for standard output);
    /// - two rules for one destination are merged, so a record is written there once;
    /// - mistakes Prosody ignores silently (an unknown level, a sink table written
    ///   without its surrounding list, a file sink with no file name) are errors.
    ///
    /// A sink type that only a Prosody module provides (`to = "json"`) is not an
    /// error: it lands in ``warnings`` and receives nothing.
    ///
    /// - Parameters:
    ///   - log: The option's value, `nil` when the config has none.
    ///   - baseDirectory: The folder relative file names are resolved against: the
    ///     config file's folder.
    /// - Throws: ``LoggingError`` listing every problem found.
    public init(log: ConfigValue?, baseDirectory: String) throws(LoggingError) {
        var reader = LogOptionReader(baseDirectory: baseDirectory)
        reader.read(log)
        guard reader.problems.isEmpty else {
            throw LoggingError(.invalidOption(reader.problems))
        }
        self.init(sinks: reader.sinks, warnings: reader.warnings)
    }

    /// Reads the config's `log` option (see ``init(log:baseDirectory:)``).
    public init(options: any OptionSource, baseDirectory: String) throws(LoggingError) {
        try self.init(log: options.value(LoggingOptions.log), baseDirectory: baseDirectory)
    }

    /// `name` as an absolute path: kept when it is one, else taken relative to `baseDirectory`.
    static func resolve(fileName name: String, against baseDirectory: String) -> String {
        if name.hasPrefix("/") || baseDirectory.isEmpty { return name }
        if baseDirectory.hasSuffix("/") { return baseDirectory + name }
        return baseDirectory + "/" + name
    }
}

/// Walks a `log` option, collecting sinks, warnings and every problem (not only
/// the first).
struct LogOptionReader {
    typealias Sink = LoggingConfiguration.Sink

    let baseDirectory: String
    private(set) var sinks: [Sink] = []
    private(set) var warnings: [String] = []
    private(set) var problems: [LoggingError.Problem] = []

    init(baseDirectory: String) {
        self.baseDirectory = baseDirectory
    }

    /// Keys of a sink table, which a user may put straight into `log` by mistake.
    private static let sinkTableKeys: Set<String> = ["to", "levels", "filename", "timestamps"]

    private enum SinkType {
        case destination(LoggingConfiguration.Destination)
        case file
        case nowhere
        case unknown
    }

    private static func sinkType(named name: String) -> SinkType {
        switch name {
        case "console", "stderr": return .destination(.console(.standardError))
        case "stdout": return .destination(.console(.standardOutput))
        case "syslog": return .destination(.syslog)
        case "file": return .file
        case "nowhere": return .nowhere
        default: return .unknown
        }
    }

    mutating func read(_ value: ConfigValue?) {
        switch value {
        case nil, .boolean(false):
            sinks = LoggingConfiguration.default.sinks
        case .string(let name):
            readSinkName(name, path: "log", levels: .atLeast(.info))
        case .table(let table):
            readTopLevelTable(table)
        case let other?:
            problems.append(.wrongType(path: "log", expected: "a string or a table", got: other.typeName))
        }
    }

    /// `"*console"`, `"*syslog"`, ... or a file name.
    private mutating func readSinkName(_ name: String, path: String, levels: LogLevels) {
        guard name.hasPrefix("*") else {
            if name.isEmpty {
                problems.append(.emptyFileName(path: path))
            } else {
                addFile(name, levels: levels)
            }
            return
        }
        let typeName = String(name.dropFirst())
        switch Self.sinkType(named: typeName) {
        case .destination(let destination):
            sinks.append(Sink(destination: destination, levels: levels))
        case .nowhere:
            break
        case .file, .unknown:
            warnings.append("\(path): sink '\(name)' is not built into NetHost; nothing is logged there")
        }
    }

    private mutating func addFile(_ name: String, levels: LogLevels) {
        let path = LoggingConfiguration.resolve(fileName: name, against: baseDirectory)
        sinks.append(Sink(destination: .file(path: path), levels: levels))
    }

    private mutating func readTopLevelTable(_ table: ConfigTable) {
        // The level-to-sink map, in level order so that the result does not depend
        // on hashing.
        let entries = table.map.sorted { Self.order($0.key) < Self.order($1.key) }
        for (key, value) in entries {
            guard case .string(let name) = key else {
                problems.append(.unknownKey(path: "log", key: Self.render(key)))
                continue
            }
            if let band = LogLevelName.band(named: name) {
                let path = "log.\(name)"
                guard case .string(let sinkName) = value else {
                    problems.append(.wrongType(
                        path: path, expected: "a file name or a sink such as \"*console\"", got: value.typeName))
                    continue
                }
                readSinkName(sinkName, path: path, levels: .atLeast(band.lowerBound))
            } else if Self.sinkTableKeys.contains(name) {
                problems.append(.sinkFieldOutsideSink(key: name))
            } else {
                problems.append(.unknownKey(path: "log", key: name))
            }
        }

        for (offset, item) in table.array.enumerated() {
            let path = "log[\(offset + 1)]"
            switch item {
            case .string(let name):
                readSinkName(name, path: path, levels: .atLeast(.info))
            case .table(let sinkTable):
                readSinkTable(sinkTable, path: path)
            default:
                problems.append(.wrongType(path: path, expected: "a sink table or a sink name", got: item.typeName))
            }
        }
    }

    /// `{ to = "file", filename = "x.log", levels = ... }`. Keys other than these
    /// are left alone: Prosody modules give their sinks options of their own.
    private mutating func readSinkTable(_ table: ConfigTable, path: String) {
        let levels: LogLevels?
        if let levelsValue = table["levels"] {
            levels = readLevels(levelsValue, path: "\(path).levels")
        } else {
            levels = .all
        }

        guard let toValue = table["to"] else {
            problems.append(.missingKey(path: path, key: "to"))
            return
        }
        guard case .string(let typeName) = toValue else {
            problems.append(.wrongType(path: "\(path).to", expected: "a sink type such as \"file\"", got: toValue.typeName))
            return
        }

        switch Self.sinkType(named: typeName) {
        case .destination(let destination):
            if let levels { sinks.append(Sink(destination: destination, levels: levels)) }
        case .file:
            guard let fileValue = table["filename"] else {
                problems.append(.missingKey(path: path, key: "filename"))
                return
            }
            guard case .string(let fileName) = fileValue else {
                problems.append(.wrongType(path: "\(path).filename", expected: "a file name", got: fileValue.typeName))
                return
            }
            guard !fileName.isEmpty else {
                problems.append(.emptyFileName(path: "\(path).filename"))
                return
            }
            if let levels { addFile(fileName, levels: levels) }
        case .nowhere:
            break
        case .unknown:
            warnings.append("\(path): sink type '\(typeName)' is not built into NetHost; nothing is logged there")
        }
    }

    /// A level name (that level only), a list of names, `{ min = ..., max = ... }`,
    /// or a list and a range together. `nil` after recording a problem.
    private mutating func readLevels(_ value: ConfigValue, path: String) -> LogLevels? {
        switch value {
        case .string(let name):
            guard let band = LogLevelName.band(named: name) else {
                problems.append(.unknownLevel(path: path, name: name))
                return nil
            }
            return .range(band)
        case .table(let table):
            return readLevelTable(table, path: path)
        default:
            problems.append(.wrongType(path: path, expected: "a level name or a table of levels", got: value.typeName))
            return nil
        }
    }

    private mutating func readLevelTable(_ table: ConfigTable, path: String) -> LogLevels? {
        let problemCount = problems.count
        var result = LogLevels()

        for key in table.map.keys.sorted() where key != .string("min") && key != .string("max") {
            problems.append(.unknownKey(path: path, key: Self.render(key)))
        }

        let minimum = readBound(table["min"], path: "\(path).min")
        let maximum = readBound(table["max"], path: "\(path).max")
        if minimum != nil || maximum != nil {
            let lower = minimum?.band.lowerBound ?? .debug
            let upper = maximum?.band.upperBound ?? .critical
            if lower <= upper {
                result.formUnion(.range(lower ... upper))
            } else if let minimum, let maximum {
                problems.append(.invertedRange(path: path, min: minimum.name, max: maximum.name))
            } else {
                // Only one end given, and it lies beyond the default other end:
                // `{ max = "trace" }`. That end alone, then.
                if let band = minimum?.band ?? maximum?.band { result.formUnion(.range(band)) }
            }
        }

        for (offset, item) in table.array.enumerated() {
            let itemPath = "\(path)[\(offset + 1)]"
            guard case .string(let name) = item else {
                problems.append(.wrongType(path: itemPath, expected: "a level name", got: item.typeName))
                continue
            }
            guard let band = LogLevelName.band(named: name) else {
                problems.append(.unknownLevel(path: itemPath, name: name))
                continue
            }
            result.formUnion(.range(band))
        }

        guard problems.count == problemCount else { return nil }
        if result.isEmpty {
            problems.append(.noLevels(path: path))
            return nil
        }
        return result
    }

    private mutating func readBound(
        _ value: ConfigValue?, path: String
    ) -> (name: String, band: ClosedRange<Logger.Level>)? {
        guard let value else { return nil }
        guard case .string(let name) = value else {
            problems.append(.wrongType(path: path, expected: "a level name", got: value.typeName))
            return nil
        }
        guard let band = LogLevelName.band(named: name) else {
            problems.append(.unknownLevel(path: path, name: name))
            return nil
        }
        return (name, band)
    }

    /// Level keys first, lowest level first, then anything else in key order.
    private static func order(_ key: ConfigKey) -> (Int, ConfigKey) {
        if case .string(let name) = key, let band = LogLevelName.band(named: name) {
            return (Logger.Level.allCases.firstIndex(of: band.lowerBound)!, key)
        }
        return (Logger.Level.allCases.count, key)
    }

    private static func render(_ key: ConfigKey) -> String {
        switch key {
        case .string(let name): return name
        case .integer(let index): return "[\(index)]"
        }
    }
}

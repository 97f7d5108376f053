import Logging
import Testing

@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging

// MARK: - Helpers

/// `{ "a", "b", key = value }` as a ConfigValue.
private func table(_ array: [ConfigValue] = [], _ map: [String: ConfigValue] = [:]) -> ConfigValue {
    .table(ConfigTable(array: array, map: Dictionary(uniqueKeysWithValues: map.map { (ConfigKey.string($0.key), $0.value) })))
}

private func sink(_ destination: LoggingConfiguration.Destination, _ levels: LogLevels) -> LoggingConfiguration.Sink {
    .init(destination: destination, levels: levels)
}

private let base = "/etc/nethost"
private let stderrConsole = LoggingConfiguration.Destination.console(.standardError)
private let stdoutConsole = LoggingConfiguration.Destination.console(.standardOutput)

private func file(_ path: String) -> LoggingConfiguration.Destination { .file(path: path) }

private func problems(of log: ConfigValue?) -> [LoggingError.Problem]? {
    do throws(LoggingError) {
        _ = try LoggingConfiguration(log: log, baseDirectory: base)
        return nil
    } catch {
        guard case .invalidOption(let problems) = error.kind else { return nil }
        return problems
    }
}

@Suite struct LoggingConfigurationTests {
    // MARK: - Shapes that are accepted

    struct LogShape: Sendable, CustomTestStringConvertible {
        var name: String
        var log: ConfigValue?
        var sinks: [LoggingConfiguration.Sink]
        var testDescription: String { name }
    }

    static let acceptedShapes: [LogShape] = [
        // No option, or the false Prosody treats as none.
        LogShape(name: "absent", log: nil, sinks: [sink(stderrConsole, .atLeast(.info))]),
        LogShape(name: "false", log: .boolean(false), sinks: [sink(stderrConsole, .atLeast(.info))]),

        // A string.
        LogShape(name: "*console", log: .string("*console"), sinks: [sink(stderrConsole, .atLeast(.info))]),
        LogShape(name: "*stderr", log: .string("*stderr"), sinks: [sink(stderrConsole, .atLeast(.info))]),
        LogShape(name: "*stdout", log: .string("*stdout"), sinks: [sink(stdoutConsole, .atLeast(.info))]),
        LogShape(name: "*syslog", log: .string("*syslog"), sinks: [sink(.syslog, .atLeast(.info))]),
        LogShape(name: "*nowhere", log: .string("*nowhere"), sinks: []),
        LogShape(
            name: "relative file name", log: .string("prosody.log"),
            sinks: [sink(file("/etc/nethost/prosody.log"), .atLeast(.info))]),
        LogShape(
            name: "relative file name in a subfolder", log: .string("logs/prosody.log"),
            sinks: [sink(file("/etc/nethost/logs/prosody.log"), .atLeast(.info))]),
        LogShape(
            name: "absolute file name", log: .string("/var/log/nethost.log"),
            sinks: [sink(file("/var/log/nethost.log"), .atLeast(.info))]),

        // A level-to-sink map: each level and everything above it.
        LogShape(
            name: "info file, error file",
            log: table([], ["info": .string("prosody.log"), "error": .string("prosody.err")]),
            sinks: [
                sink(file("/etc/nethost/prosody.log"), .atLeast(.info)),
                sink(file("/etc/nethost/prosody.err"), .atLeast(.error)),
            ]),
        LogShape(
            name: "debug console",
            log: table([], ["debug": .string("*console")]),
            sinks: [sink(stderrConsole, .atLeast(.debug))]),
        LogShape(
            name: "map in level order whatever the hashing",
            log: table([], ["warn": .string("*syslog"), "info": .string("*stdout"), "error": .string("/var/log/e.log")]),
            sinks: [
                sink(stdoutConsole, .atLeast(.info)),
                sink(.syslog, .atLeast(.warning)),
                sink(file("/var/log/e.log"), .atLeast(.error)),
            ]),
        LogShape(
            name: "swift-log level names in a map",
            log: table([], ["notice": .string("*console"), "critical": .string("crit.log")]),
            sinks: [
                sink(stderrConsole, .atLeast(.notice)),
                sink(file("/etc/nethost/crit.log"), [.critical]),
            ]),
        LogShape(
            name: "*nowhere in a map",
            log: table([], ["debug": .string("*nowhere"), "error": .string("*console")]),
            sinks: [sink(stderrConsole, .atLeast(.error))]),

        // A list of sink tables.
        LogShape(
            name: "the brief's list",
            log: table([
                table([], ["levels": table([], ["min": .string("info")]), "to": .string("file"), "filename": .string("x.log")]),
                table([], ["levels": table([.string("error")]), "to": .string("console")]),
            ]),
            sinks: [
                sink(file("/etc/nethost/x.log"), .atLeast(.info)),
                sink(stderrConsole, [.error, .critical]),
            ]),
        LogShape(
            name: "a single level string is that level only, as in Prosody",
            log: table([table([], ["levels": .string("warn"), "to": .string("stdout")])]),
            sinks: [sink(stdoutConsole, [.warning])]),
        LogShape(
            name: "info stands for info and notice",
            log: table([table([], ["levels": .string("info"), "to": .string("stderr")])]),
            sinks: [sink(stderrConsole, [.info, .notice])]),
        LogShape(
            name: "min and max",
            log: table([table([], ["levels": table([], ["min": .string("debug"), "max": .string("info")]), "to": .string("syslog")])]),
            sinks: [sink(.syslog, [.debug, .info, .notice])]),
        LogShape(
            name: "max alone starts at debug",
            log: table([table([], ["levels": table([], ["max": .string("warn")]), "to": .string("console")])]),
            sinks: [sink(stderrConsole, [.debug, .info, .notice, .warning])]),
        LogShape(
            name: "a list of levels",
            log: table([table([], ["levels": table([.string("debug"), .string("error")]), "to": .string("console")])]),
            sinks: [sink(stderrConsole, [.debug, .error, .critical])]),
        LogShape(
            name: "a range and a list together",
            log: table([table([], ["levels": table([.string("debug")], ["min": .string("error")]), "to": .string("console")])]),
            sinks: [sink(stderrConsole, [.debug, .error, .critical])]),
        LogShape(
            name: "swift-log names are exact",
            log: table([table([], ["levels": table([.string("trace"), .string("notice"), .string("critical")]), "to": .string("console")])]),
            sinks: [sink(stderrConsole, [.trace, .notice, .critical])]),
        LogShape(
            name: "no levels means debug and above",
            log: table([table([], ["to": .string("file"), "filename": .string("/tmp/all.log"), "timestamps": .boolean(true)])]),
            sinks: [sink(file("/tmp/all.log"), .atLeast(.debug))]),
        LogShape(
            name: "a sink name in the list",
            log: table([.string("*syslog"), .string("debug.log")]),
            sinks: [sink(.syslog, .atLeast(.info)), sink(file("/etc/nethost/debug.log"), .atLeast(.info))]),
        LogShape(
            name: "to = nowhere",
            log: table([table([], ["to": .string("nowhere")])]),
            sinks: []),
        LogShape(name: "empty table: log nothing, as Prosody", log: table(), sinks: []),

        // Mixed, and merged.
        LogShape(
            name: "map and list in one table",
            log: table([table([], ["to": .string("console"), "levels": .string("error")])], ["info": .string("a.log")]),
            sinks: [sink(file("/etc/nethost/a.log"), .atLeast(.info)), sink(stderrConsole, [.error, .critical])]),
        LogShape(
            name: "one file named twice is one sink",
            log: table([], ["info": .string("a.log"), "error": .string("/etc/nethost/a.log")]),
            sinks: [sink(file("/etc/nethost/a.log"), .atLeast(.info))]),
        LogShape(
            name: "*console and to = stderr are one sink",
            log: table([.string("*console"), table([], ["to": .string("stderr"), "levels": table([.string("debug")])])]),
            sinks: [sink(stderrConsole, .atLeast(.debug))]),
    ]

    @Test("log option shapes", arguments: LoggingConfigurationTests.acceptedShapes)
    func logOptionShape(_ shape: LogShape) throws {
        let configuration = try LoggingConfiguration(log: shape.log, baseDirectory: base)
        #expect(configuration.sinks == shape.sinks)
        #expect(configuration.warnings.isEmpty)
    }

    @Test func baseDirectoryWithTrailingSlashOrNone() throws {
        let slash = try LoggingConfiguration(log: .string("a.log"), baseDirectory: "/srv/")
        #expect(slash.sinks == [sink(file("/srv/a.log"), .atLeast(.info))])
        let none = try LoggingConfiguration(log: .string("a.log"), baseDirectory: "")
        #expect(none.sinks == [sink(file("a.log"), .atLeast(.info))])
    }

    @Test func sinkTypesFromModulesAreWarningsNotErrors() throws {
        let configuration = try LoggingConfiguration(
            log: table(
                [
                    table([], ["to": .string("json"), "filename": .string("p.json")]),
                    .string("*ringbuffer"),
                ],
                ["info": .string("p.log")]),
            baseDirectory: base)
        #expect(configuration.sinks == [sink(file("/etc/nethost/p.log"), .atLeast(.info))])
        #expect(configuration.warnings == [
            "log[1]: sink type 'json' is not built into NetHost; nothing is logged there",
            "log[2]: sink '*ringbuffer' is not built into NetHost; nothing is logged there",
        ])
    }

    // MARK: - Shapes that are refused

    struct BadLogShape: Sendable, CustomTestStringConvertible {
        var name: String
        var log: ConfigValue
        var problems: [LoggingError.Problem]
        var testDescription: String { name }
    }

    static let refusedShapes: [BadLogShape] = [
        BadLogShape(
            name: "a number", log: .integer(5),
            problems: [.wrongType(path: "log", expected: "a string or a table", got: "number")]),
        BadLogShape(
            name: "true", log: .boolean(true),
            problems: [.wrongType(path: "log", expected: "a string or a table", got: "boolean")]),
        BadLogShape(name: "empty string", log: .string(""), problems: [.emptyFileName(path: "log")]),
        BadLogShape(
            name: "a map key that is no level", log: table([], ["infos": .string("x.log")]),
            problems: [.unknownKey(path: "log", key: "infos")]),
        BadLogShape(
            name: "an integer key outside the sequence",
            log: .table(ConfigTable(map: [.integer(3): .string("x.log")])),
            problems: [.unknownKey(path: "log", key: "[3]")]),
        BadLogShape(
            name: "a sink table without its list", log: table([], ["to": .string("file"), "filename": .string("x.log")]),
            problems: [.sinkFieldOutsideSink(key: "filename"), .sinkFieldOutsideSink(key: "to")]),
        BadLogShape(
            name: "a level mapped to a number", log: table([], ["info": .integer(1)]),
            problems: [.wrongType(path: "log.info", expected: "a file name or a sink such as \"*console\"", got: "number")]),
        BadLogShape(
            name: "a level mapped to an empty name", log: table([], ["error": .string("")]),
            problems: [.emptyFileName(path: "log.error")]),
        BadLogShape(
            name: "a number in the list", log: table([.integer(1)]),
            problems: [.wrongType(path: "log[1]", expected: "a sink table or a sink name", got: "number")]),
        BadLogShape(
            name: "a sink with no to", log: table([table([], ["filename": .string("x.log")])]),
            problems: [.missingKey(path: "log[1]", key: "to")]),
        BadLogShape(
            name: "to that is not a string", log: table([table([], ["to": .boolean(true)])]),
            problems: [.wrongType(path: "log[1].to", expected: "a sink type such as \"file\"", got: "boolean")]),
        BadLogShape(
            name: "a file sink with no file name", log: table([table([], ["to": .string("file")])]),
            problems: [.missingKey(path: "log[1]", key: "filename")]),
        BadLogShape(
            name: "a file name that is no string", log: table([table([], ["to": .string("file"), "filename": .integer(1)])]),
            problems: [.wrongType(path: "log[1].filename", expected: "a file name", got: "number")]),
        BadLogShape(
            name: "an empty file name", log: table([table([], ["to": .string("file"), "filename": .string("")])]),
            problems: [.emptyFileName(path: "log[1].filename")]),
        BadLogShape(
            name: "an unknown level", log: table([table([], ["to": .string("console"), "levels": .string("verbose")])]),
            problems: [.unknownLevel(path: "log[1].levels", name: "verbose")]),
        BadLogShape(
            name: "an unknown min",
            log: table([table([], ["to": .string("console"), "levels": table([], ["min": .string("loud")])])]),
            problems: [.unknownLevel(path: "log[1].levels.min", name: "loud")]),
        BadLogShape(
            name: "an unknown level in a list",
            log: table([table([], ["to": .string("console"), "levels": table([.string("info"), .string("fatal")])])]),
            problems: [.unknownLevel(path: "log[1].levels[2]", name: "fatal")]),
        BadLogShape(
            name: "a number as a level",
            log: table([table([], ["to": .string("console"), "levels": table([.integer(3)])])]),
            problems: [.wrongType(path: "log[1].levels[1]", expected: "a level name", got: "number")]),
        BadLogShape(
            name: "levels that are a boolean",
            log: table([table([], ["to": .string("console"), "levels": .boolean(true)])]),
            problems: [.wrongType(path: "log[1].levels", expected: "a level name or a table of levels", got: "boolean")]),
        BadLogShape(
            name: "min above max",
            log: table([table([], ["to": .string("console"), "levels": table([], ["min": .string("error"), "max": .string("info")])])]),
            problems: [.invertedRange(path: "log[1].levels", min: "error", max: "info")]),
        BadLogShape(
            name: "levels selecting nothing",
            log: table([table([], ["to": .string("console"), "levels": table()])]),
            problems: [.noLevels(path: "log[1].levels")]),
        BadLogShape(
            name: "a misspelt min",
            log: table([table([], ["to": .string("console"), "levels": table([], ["minimum": .string("info")])])]),
            problems: [.unknownKey(path: "log[1].levels", key: "minimum")]),
        BadLogShape(
            name: "every problem, not only the first",
            log: table(
                [
                    table([], ["to": .string("file")]),
                    table([], ["to": .string("console"), "levels": .string("loud")]),
                ],
                ["verbose": .string("*console")]),
            problems: [
                .unknownKey(path: "log", key: "verbose"),
                .missingKey(path: "log[1]", key: "filename"),
                .unknownLevel(path: "log[2].levels", name: "loud"),
            ]),
    ]

    @Test("refused log option shapes", arguments: LoggingConfigurationTests.refusedShapes)
    func refusedLogOptionShape(_ shape: BadLogShape) {
        #expect(problems(of: shape.log) == shape.problems)
    }

    @Test func errorDescriptionNamesThePlaceAndTheProblem() {
        #expect(throws: LoggingError.self) {
            try LoggingConfiguration(log: .integer(1), baseDirectory: base)
        }
        do throws(LoggingError) {
            _ = try LoggingConfiguration(
                log: table([table([], ["to": .string("console"), "levels": table([], ["min": .string("loud")])])]),
                baseDirectory: base)
            Issue.record("accepted a bad level")
        } catch {
            #expect(error.description == """
                invalid 'log' option: log[1].levels.min: unknown level 'loud' \
                (expected debug, info, warn or error (or trace, notice, warning, critical))
                """)
        }
        do throws(LoggingError) {
            _ = try LoggingConfiguration(log: table([], ["to": .string("console"), "info": .integer(2)]), baseDirectory: base)
            Issue.record("accepted a bad shape")
        } catch {
            #expect(error.description == """
                invalid 'log' option:
                  - log.info: expected a file name or a sink such as "*console", got a number
                  - log: 'to' belongs in a sink table; write log = { { to = ..., ... } } (a list of tables)
                """)
            #expect(error.problems.count == 2)
            #expect(error.unopenableFiles.isEmpty)
        }
    }

    // MARK: - Command line override and level names

    @Test func logLevelOverrideLowersEveryConsoleAndNothingElse() throws {
        var configuration = try LoggingConfiguration(
            log: table([], ["info": .string("a.log"), "warn": .string("*stdout"), "error": .string("*console")]),
            baseDirectory: base)
        configuration.overrideConsoleLevel(minimum: .debug)
        #expect(configuration.sinks == [
            sink(file("/etc/nethost/a.log"), .atLeast(.info)),
            sink(stdoutConsole, .atLeast(.debug)),
            sink(stderrConsole, .atLeast(.debug)),
        ])

        let raised = configuration.overridingConsoleLevel(minimum: .error)
        #expect(raised.sinks.map(\.levels) == [.atLeast(.info), .atLeast(.error), .atLeast(.error)])
        // The original is untouched by the non-mutating form.
        #expect(configuration.sinks[1].levels == .atLeast(.debug))
    }

    @Test func logLevelOverrideAddsNoConsole() throws {
        let configuration = try LoggingConfiguration(log: .string("only.log"), baseDirectory: base)
            .overridingConsoleLevel(minimum: .trace)
        #expect(configuration.sinks == [sink(file("/etc/nethost/only.log"), .atLeast(.info))])
    }

    @Test(arguments: [
        ("debug", Logger.Level.debug), ("info", .info), ("warn", .warning), ("error", .error),
        ("trace", .trace), ("notice", .notice), ("warning", .warning), ("critical", .critical), ("INFO", .info),
    ])
    func levelNames(name: String, level: Logger.Level) {
        #expect(LoggingConfiguration.level(named: name) == level)
    }

    @Test func unknownLevelNameIsNil() {
        #expect(LoggingConfiguration.level(named: "verbose") == nil)
        #expect(LoggingConfiguration.level(named: "") == nil)
    }

    @Test func logLevelsSetOperations() {
        #expect(LogLevels.atLeast(.warning).levels == [.warning, .error, .critical])
        #expect(LogLevels.range(.debug ... .info).levels == [.debug, .info])
        #expect(LogLevels.all.levels == [.debug, .info, .notice, .warning, .error, .critical])
        #expect(LogLevels().isEmpty)
        #expect(LogLevels([.error, .debug]).minimum == .debug)
        #expect(LogLevels.atLeast(.info).description == "info...critical")
        #expect(LogLevels([.warning, .error]).description == "warn, error")
        #expect(LogLevels([.error]).description == "error")
        #expect(LogLevels().description == "none")
    }

    @Test func syslogFacilityNames() {
        #expect(SyslogFacility(name: "daemon") == .daemon)
        #expect(SyslogFacility(name: "LOCAL3") == .local3)
        #expect(SyslogFacility(name: "nonsense") == nil)
        #expect(LoggingConfiguration.default.syslogFacility == .daemon)
        #expect(LoggingConfiguration.default.syslogIdentifier == "nethost")
    }
}

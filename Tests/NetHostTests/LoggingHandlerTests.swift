import Foundation
import Logging
import Testing

@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging

// MARK: - Helpers

/// A fresh folder for one test, removed afterwards.
private func withTemporaryDirectory<T>(_ body: (String) async throws -> T) async throws -> T {
    let path = FileManager.default.temporaryDirectory
        .appendingPathComponent("nethost-logging-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try await body(path)
}

/// The text of a log file, once the process's writer has written what was logged.
private func contents(_ path: String) throws -> String {
    #expect(LogWriter.shared.flush(timeout: .seconds(30)), "the log writer did not catch up")
    return try String(contentsOfFile: path, encoding: .utf8)
}

/// The lines of a log file with their timestamps checked and taken off.
private func records(_ path: String) throws -> [String] {
    let text = try contents(path)
    guard !text.isEmpty else { return [] }
    #expect(text.hasSuffix("\n"), "a record ends with a newline")
    return try text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map { line in
        let match = try #require(try #/^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z) (.*)$/#.wholeMatch(in: line))
        return String(match.output.2)
    }
}

private func table(_ array: [ConfigValue] = [], _ map: [String: ConfigValue] = [:]) -> ConfigValue {
    .table(ConfigTable(array: array, map: Dictionary(uniqueKeysWithValues: map.map { (ConfigKey.string($0.key), $0.value) })))
}

private func logger(
    _ label: String, log: ConfigValue?, in directory: String, metadataProvider: Logger.MetadataProvider? = nil
) throws -> Logger {
    let configuration = try LoggingConfiguration(log: log, baseDirectory: directory)
    let factory = try LoggingSystem.makeLogHandlerFactory(configuration, metadataProvider: metadataProvider)
    return Logger(label: label, factory: factory)
}

enum LoggingTestError: Error, CustomStringConvertible {
    case boom
    var description: String { "boom" }
}

@Suite struct LoggingHandlerTests {
    // MARK: - Line format

    @Test func lineFormatIsTheDocumentedOne() {
        let line = LogLine(
            time: LogTimestamp(seconds: 1_795_729_200, milliseconds: 123),
            level: .info,
            label: "net_proxy",
            message: "message",
            metadata: ["key2": "value2", "key": "value"])
        #expect(line.text == "2026-11-26T21:40:00.123Z info [net_proxy] message key=value key2=value2\n")
        #expect(String(decoding: line.syslogMessage, as: UTF8.self) == "[net_proxy] message key=value key2=value2")
    }

    @Test(arguments: [
        (0, 0, "1970-01-01T00:00:00.000Z"),
        (951_782_400, 7, "2000-02-29T00:00:00.007Z"),
        (951_868_799, 999, "2000-02-29T23:59:59.999Z"),
        (1_795_729_200, 123, "2026-11-26T21:40:00.123Z"),
        (4_107_542_400, 50, "2100-03-01T00:00:00.050Z"),
    ])
    func timestamps(seconds: Int, milliseconds: Int, expected: String) {
        var bytes: [UInt8] = []
        LogTimestamp(seconds: seconds, milliseconds: milliseconds).append(to: &bytes)
        #expect(String(decoding: bytes, as: UTF8.self) == expected)
    }

    @Test(arguments: [
        (Logger.Level.trace, "trace"), (.debug, "debug"), (.info, "info"), (.notice, "notice"),
        (.warning, "warn"), (.error, "error"), (.critical, "critical"),
    ])
    func levelNamesInLines(level: Logger.Level, name: String) {
        let line = LogLine(time: LogTimestamp(seconds: 0, milliseconds: 0), level: level, label: "l", message: "m", metadata: nil)
        #expect(line.text == "1970-01-01T00:00:00.000Z \(name) [l] m\n")
    }

    @Test func controlCharactersAreEscapedSoARecordIsOneLine() {
        let line = LogLine(
            time: LogTimestamp(seconds: 0, milliseconds: 0), level: .warning, label: "a\nb",
            message: "first\nsecond\r\nthird\u{1B}[31m\tend\u{7F} é",
            metadata: ["k\n": "v\nw"])
        #expect(line.text == "1970-01-01T00:00:00.000Z warn [a\\nb] first\\nsecond\\r\\nthird\\x1B[31m\tend\\x7F é k\\n=v\\nw\n")
        #expect(line.bytes.filter { $0 == UInt8(ascii: "\n") }.count == 1)
    }

    @Test func nestedMetadataIsSortedToo() {
        let line = LogLine(
            time: LogTimestamp(seconds: 0, milliseconds: 0), level: .info, label: "l", message: "m",
            metadata: [
                "list": ["a", "b\nc"],
                "dict": ["z": "1", "a": ["x", "y"]],
                "number": .stringConvertible(42),
                "empty": "",
            ])
        #expect(line.text == "1970-01-01T00:00:00.000Z info [l] m dict=[a: [x, y], z: 1] empty= list=[a, b\\nc] number=42\n")
    }

    // MARK: - The handler writing files

    @Test func handlerWritesTheLineFormatToAFile() async throws {
        try await withTemporaryDirectory { directory in
            let log = try logger("net_proxy", log: .string("out.log"), in: directory)
            let before = Date()
            log.info("hello world", metadata: ["b": "2", "a": "1"])
            let after = Date()

            let path = directory + "/out.log"
            #expect(try records(path) == ["info [net_proxy] hello world a=1 b=2"])

            // The timestamp is the time of the call, in UTC.
            let stamp = String(try contents(path).prefix(24))
            let parser = ISO8601DateFormatter()
            parser.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            let time = try #require(parser.date(from: stamp))
            #expect(time >= before.addingTimeInterval(-0.001) && time <= after.addingTimeInterval(0.001))
        }
    }

    @Test func eachSinkFiltersByItsOwnLevels() async throws {
        try await withTemporaryDirectory { directory in
            let log = try logger(
                "core", log: table([], ["info": .string("a.log"), "error": .string("b.err")]), in: directory)
            log.debug("d")
            log.info("i")
            log.notice("n")
            log.warning("w")
            log.error("e")
            log.critical("c")

            #expect(try records(directory + "/a.log") == [
                "info [core] i", "notice [core] n", "warn [core] w", "error [core] e", "critical [core] c",
            ])
            #expect(try records(directory + "/b.err") == ["error [core] e", "critical [core] c"])
        }
    }

    @Test func exactLevelListsAndRanges() async throws {
        try await withTemporaryDirectory { directory in
            let log = try logger(
                "x",
                log: table([
                    table([], ["to": .string("file"), "filename": .string("warn-only.log"), "levels": .string("warn")]),
                    table([], [
                        "to": .string("file"), "filename": .string("range.log"),
                        "levels": table([], ["min": .string("debug"), "max": .string("info")]),
                    ]),
                ]),
                in: directory)
            log.trace("t")
            log.debug("d")
            log.info("i")
            log.warning("w")
            log.error("e")
            #expect(try records(directory + "/warn-only.log") == ["warn [x] w"])
            #expect(try records(directory + "/range.log") == ["debug [x] d", "info [x] i"])
        }
    }

    @Test func handlerLevelIsTheLowestAnySinkWants() async throws {
        try await withTemporaryDirectory { directory in
            let infoAndUp = try logger("x", log: table([], ["info": .string("a.log"), "error": .string("b.log")]), in: directory)
            #expect(infoAndUp.logLevel == .info)

            // A record no sink wants is not even built.
            var built = false
            infoAndUp.debug("\({ built = true; return "expensive" }())")
            #expect(!built)

            let debugAndUp = try logger("x", log: table([], ["debug": .string("c.log")]), in: directory)
            #expect(debugAndUp.logLevel == .debug)

            // Raising a logger's level above a sink's still filters.
            var quiet = debugAndUp
            quiet.logLevel = .error
            quiet.info("dropped")
            quiet.error("kept")
            #expect(try records(directory + "/c.log") == ["error [x] kept"])
        }
    }

    @Test func loggerProviderAndCallMetadataAreMergedAndSorted() async throws {
        try await withTemporaryDirectory { directory in
            let provider = Logger.MetadataProvider { ["shared": "provider", "trace_id": "t-1"] }
            var log = try logger("meta", log: .string("m.log"), in: directory, metadataProvider: provider)
            log[metadataKey: "shared"] = "logger"
            log[metadataKey: "connection"] = "c-7"

            log.info("one")
            log.info("two", metadata: ["shared": "call", "z": "last", "a": "first"])

            #expect(try records(directory + "/m.log") == [
                "info [meta] one connection=c-7 shared=provider trace_id=t-1",
                "info [meta] two a=first connection=c-7 shared=call trace_id=t-1 z=last",
            ])
        }
    }

    @Test func bootstrappedMetadataProviderIsUsedWhenNoneIsGiven() async throws {
        try await withTemporaryDirectory { directory in
            // Without bootstrap, LoggingSystem.metadataProvider is nil: only the logger's own.
            let configuration = try LoggingConfiguration(log: .string("p.log"), baseDirectory: directory)
            let factory = try LoggingSystem.makeLogHandlerFactory(configuration)
            var log = Logger(label: "p", factory: factory)
            log[metadataKey: "k"] = "v"
            log.info("m")
            // The handler accepts a provider later, as swift-log lets a user set one.
            log.handler.metadataProvider = Logger.MetadataProvider { ["late": "yes"] }
            log.info("n")
            #expect(try records(directory + "/p.log") == ["info [p] m k=v", "info [p] n k=v late=yes"])
        }
    }

    @Test func anErrorAttachedToTheRecordIsPrinted() async throws {
        try await withTemporaryDirectory { directory in
            let log = try logger("e", log: .string("e.log"), in: directory)
            log.error("failed", error: LoggingTestError.boom, metadata: ["port": "5222"])
            #expect(try records(directory + "/e.log") == [
                "error [e] failed error.message=boom error.type=NetHostTests.LoggingTestError port=5222"
            ])
        }
    }

    @Test func messagesWithNewlinesStayOneRecordPerLine() async throws {
        try await withTemporaryDirectory { directory in
            let log = try logger("nl", log: .string("n.log"), in: directory)
            log.warning("line one\nline two", metadata: ["peer": "evil\nforged line"])
            #expect(try records(directory + "/n.log") == ["warn [nl] line one\\nline two peer=evil\\nforged line"])
        }
    }

    @Test func filesAreAppendedToNotTruncated() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/keep.log"
            try "earlier line\n".write(toFile: path, atomically: false, encoding: .utf8)
            let log = try logger("a", log: .string(path), in: "/somewhere/else")
            log.info("later")
            let text = try contents(path)
            #expect(text.hasPrefix("earlier line\n"))
            #expect(text.hasSuffix(" info [a] later\n"))
            #expect(text.split(separator: "\n").count == 2)
        }
    }

    @Test func filesThatCannotBeOpenedAreReportedAtBootstrap() async throws {
        try await withTemporaryDirectory { directory in
            let configuration = try LoggingConfiguration(
                log: table([], ["info": .string("missing/folder/x.log"), "warn": .string(directory), "error": .string("ok.log")]),
                baseDirectory: directory)
            do throws(LoggingError) {
                _ = try LoggingSystem.makeLogHandlerFactory(configuration)
                Issue.record("opened a log file in a folder that does not exist")
            } catch {
                #expect(error.unopenableFiles == [directory + "/missing/folder/x.log", directory])
                #expect(error.problems == [
                    "cannot open log file '\(directory)/missing/folder/x.log': no such file or directory",
                    "cannot open log file '\(directory)': is a directory",
                ])
                #expect(error.description == error.problems.joined(separator: "\n"))
            }
        }
    }

    @Test func concurrentRecordsNeverInterleave() async throws {
        try await withTemporaryDirectory { directory in
            let log = try logger("busy", log: .string("c.log"), in: directory)
            let tasks = 8
            let perTask = 250
            let padding = String(repeating: "x", count: 300)
            await withTaskGroup(of: Void.self) { group in
                for task in 0 ..< tasks {
                    group.addTask {
                        for index in 0 ..< perTask {
                            log.info("record \(padding)", metadata: ["task": "\(task)", "index": "\(index)"])
                        }
                    }
                }
            }
            let lines = try records(directory + "/c.log")
            #expect(lines.count == tasks * perTask)
            let expected = Set((0 ..< tasks).flatMap { task in
                (0 ..< perTask).map { "info [busy] record \(padding) index=\($0) task=\(task)" }
            })
            #expect(Set(lines) == expected)
        }
    }

    // MARK: - Console and syslog

    @Test func consoleSinksShareTheProcessStreams() throws {
        let configuration = try LoggingConfiguration(
            log: table([], ["info": .string("*stdout"), "error": .string("*console")]), baseDirectory: "/")
        let sinks = try OpenSinks(opening: configuration)
        #expect(sinks.sinks.count == 2)
        #expect(sinks.sinks[0].output as? FileDescriptorOutput === FileDescriptorOutput.standardOutput)
        #expect(sinks.sinks[1].output as? FileDescriptorOutput === FileDescriptorOutput.standardError)
        #expect(sinks.accepted == .atLeast(.info))
    }

    @Test func descriptorOutputWritesWholeLines() throws {
        var ends: [Int32] = [0, 0]
        #expect(pipe(&ends) == 0)
        defer { close(ends[0]) }
        let output = FileDescriptorOutput(descriptor: ends[1], ownsDescriptor: true)
        let line = LogLine(time: LogTimestamp(seconds: 0, milliseconds: 1), level: .notice, label: "pipe", message: "hi", metadata: nil)
        #expect(output.write(line, level: .notice) == .written)

        var buffer = [UInt8](repeating: 0, count: 256)
        let count = read(ends[0], &buffer, buffer.count)
        #expect(String(decoding: buffer.prefix(max(count, 0)), as: UTF8.self) == "1970-01-01T00:00:00.001Z notice [pipe] hi\n")
    }

    @Test(arguments: [
        (Logger.Level.trace, LOG_DEBUG), (.debug, LOG_DEBUG), (.info, LOG_INFO), (.notice, LOG_NOTICE),
        (.warning, LOG_WARNING), (.error, LOG_ERR), (.critical, LOG_CRIT),
    ])
    func syslogPriorities(level: Logger.Level, priority: Int32) {
        #expect(SyslogOutput.priority(of: level) == priority)
    }

    /// What the system log receives (priority, tag, text) is checked end to end, on a
    /// `/dev/log` of the test's own: `CommandLineSyslogTests`. Here, only that the sink
    /// is chosen, and that with no syslog daemon (this process's `/dev/log` is
    /// whatever the machine has, often nothing) a record is dropped: the call returns.
    @Test func syslogSinkIsChosenAndARecordWithoutADaemonIsDropped() throws {
        var configuration = try LoggingConfiguration(log: .string("*syslog"), baseDirectory: "/")
        configuration.syslogIdentifier = "nethost-tests"
        configuration.syslogFacility = .local7
        let sinks = try OpenSinks(opening: configuration)
        #expect(sinks.sinks.count == 1)
        #expect(sinks.sinks[0].output is SyslogOutput)
        #expect(sinks.accepted == .atLeast(.info))
        #expect(SyslogFacility.local7.code == LOG_LOCAL7)
        let log = Logger(label: "syslog-test", factory: try LoggingSystem.makeLogHandlerFactory(configuration, metadataProvider: nil))
        log.info("a record for syslog", metadata: ["k": "v"])
    }
}

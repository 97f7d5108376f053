import Logging
import Synchronization

/// A swift-log handler that formats each record once and queues it for every
/// configured sink whose levels include the record's level; the ``LogWriter``'s
/// thread writes it, so a log call never waits for a file, a FIFO or syslog.
///
/// Get handlers from ``Logging/LoggingSystem/makeLogHandlerFactory(_:)``: the
/// factory opens the sinks once, and every handler it makes shares them. The
/// handler itself is a value (level, metadata, metadata provider), as swift-log
/// wants.
public struct SinkLogHandler: LogHandler {
    public let label: String
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?

    /// The lowest level any sink accepts now (so that a record no sink wants is not
    /// even built; each sink filters again by its own levels), unless set.
    public var logLevel: Logger.Level {
        get { levelSet ?? sinkSet.minimumLevel }
        set { levelSet = newValue }
    }
    private var levelSet: Logger.Level?

    /// Shared by every handler of a factory; a reload can replace the sinks in it.
    private let sinkSet: LogSinkSet

    init(label: String, sinks: OpenSinks, metadataProvider: Logger.MetadataProvider?) {
        self.init(label: label, sinkSet: LogSinkSet(sinks), metadataProvider: metadataProvider)
    }

    init(label: String, sinkSet: LogSinkSet, metadataProvider: Logger.MetadataProvider?) {
        self.label = label
        self.sinkSet = sinkSet
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let sinks = sinkSet.sinks
        guard sinks.accepted.contains(event.level) else { return }
        let line = LogLine(
            time: .now(),
            level: event.level,
            label: label,
            message: event.message.description,
            metadata: effectiveMetadata(explicit: event.metadata, error: event.error)
        )
        // Queued, not written: the writer's thread writes it (see LogWriter).
        sinks.writer.enqueue(line, level: event.level, to: sinks.sinks)
    }

    /// The handler's metadata, overridden by the provider's, overridden by the
    /// call's; an error attached to the event adds `error.message` and `error.type`
    /// (as swift-log's own `StreamLogHandler` does).
    private func effectiveMetadata(explicit: Logger.Metadata?, error: (any Error)?) -> Logger.Metadata {
        var result = metadata
        if let provided = metadataProvider?.get(), !provided.isEmpty {
            result.merge(provided) { _, provided in provided }
        }
        if let explicit, !explicit.isEmpty {
            result.merge(explicit) { _, explicit in explicit }
        }
        if let error {
            result["error.message"] = "\(error)"
            result["error.type"] = "\(String(reflecting: type(of: error)))"
        }
        return result
    }
}

/// A sink with its output opened, and what its writer counts for it.
final class OpenSink: @unchecked Sendable {
    // @unchecked: `queueDrops` and `listedForDrops` are read and written with the
    // LogWriter's lock held; `writer` by the writer's thread alone.

    /// What the writer's thread keeps about a sink.
    struct WriterState {
        /// Lines dropped because the queue was full, not reported in the sink yet.
        var queueDrops = 0
        /// Lines dropped because a write failed, not reported in the sink yet.
        var writeDrops = 0
        /// The error that began the present run of failures (reported once).
        var failure: Int32?
    }

    let levels: LogLevels
    let output: any LogOutput
    /// Every line of this sink dropped so far, whatever the reason.
    let droppedLines = Atomic<Int>(0)
    /// Lines dropped since the last one accepted for this sink (the writer's lock).
    var queueDrops = 0
    /// Whether the writer's list of sinks with drops has this one (the writer's lock).
    var listedForDrops = false
    /// The writer's thread only.
    var writer = WriterState()

    init(levels: LogLevels, output: any LogOutput) {
        self.levels = levels
        self.output = output
    }
}

/// The opened sinks a factory's handlers share, and the writer they queue lines for.
struct OpenSinks: Sendable {
    let sinks: [OpenSink]
    /// Every level at least one sink takes.
    let accepted: LogLevels
    let writer: LogWriter

    init(_ sinks: [OpenSink], writer: LogWriter = .shared) {
        self.sinks = sinks.filter { !$0.levels.isEmpty }
        self.accepted = sinks.reduce(LogLevels()) { $0.union($1.levels) }
        self.writer = writer
    }

    /// Opens every sink of `configuration`: files now, so that a file that cannot be
    /// opened stops start-up instead of losing its records.
    init(opening configuration: LoggingConfiguration, writer: LogWriter = .shared) throws(LoggingError) {
        var opened: [OpenSink] = []
        var failures: [LoggingError.FileFailure] = []
        var syslog: SyslogOutput?
        for sink in configuration.sinks where !sink.levels.isEmpty {
            switch sink.destination {
            case .console(.standardError):
                opened.append(OpenSink(levels: sink.levels, output: FileDescriptorOutput.standardError))
            case .console(.standardOutput):
                opened.append(OpenSink(levels: sink.levels, output: FileDescriptorOutput.standardOutput))
            case .file(let path):
                switch FileDescriptorOutput.appending(toFileAt: path) {
                case .success(let output):
                    opened.append(OpenSink(levels: sink.levels, output: output))
                case .failure(let failure):
                    failures.append(failure)
                }
            case .syslog:
                let output = syslog ?? SyslogOutput(
                    identifier: configuration.syslogIdentifier, facility: configuration.syslogFacility)
                syslog = output
                opened.append(OpenSink(levels: sink.levels, output: output))
            }
        }
        guard failures.isEmpty else {
            throw LoggingError(.cannotOpenFiles(failures))
        }
        self.init(opened, writer: writer)
    }
}

/// The sinks a factory's handlers write to. Loggers are values kept all over the
/// process (one per connection), so reopening the log files cannot hand them new
/// handlers: they all read the sinks from here, and a reload replaces them here.
final class LogSinkSet: Sendable {
    private let current: Mutex<OpenSinks>
    /// `minimumLevel`, as its index in `Logger.Level.allCases`: read on every log
    /// call, without a lock.
    private let minimumIndex: Atomic<Int>

    init(_ sinks: OpenSinks) {
        current = Mutex(sinks)
        minimumIndex = Atomic(Self.index(of: sinks))
    }

    var sinks: OpenSinks { current.withLock { $0 } }

    var minimumLevel: Logger.Level { Self.levels[minimumIndex.load(ordering: .relaxed)] }

    /// Made once: `allCases` builds a new array at each call, and this is read at every log call.
    private static let levels = Logger.Level.allCases

    /// Lines queued before this go to the old sinks (an old file is closed once
    /// the writer is done with them); lines logged after it to the new ones.
    func replace(with sinks: OpenSinks) {
        current.withLock { $0 = sinks }
        minimumIndex.store(Self.index(of: sinks), ordering: .relaxed)
    }

    private static func index(of sinks: OpenSinks) -> Int {
        let level = sinks.accepted.minimum ?? .critical
        return levels.firstIndex(of: level) ?? levels.count - 1
    }
}

/// Log handlers whose files can be opened again while the process runs: after a
/// log rotation (logrotate renames the file, then `systemctl reload` sends SIGHUP),
/// or with a `log` option the reloaded config changed. `factory` is what
/// `LoggingSystem.bootstrap` takes.
public final class ReopenableLogging: Sendable {
    private let sinkSet: LogSinkSet

    /// Opens the sinks of `configuration`.
    /// - Throws: ``LoggingError`` naming every log file that cannot be opened.
    public init(_ configuration: LoggingConfiguration) throws(LoggingError) {
        sinkSet = LogSinkSet(try OpenSinks(opening: configuration))
    }

    public var factory: @Sendable (String) -> any LogHandler {
        { [sinkSet] label in SinkLogHandler(label: label, sinkSet: sinkSet, metadataProvider: LoggingSystem.metadataProvider) }
    }

    /// Opens every sink of `configuration` again, by name (a rotated file's
    /// successor, or new files), and switches every handler to them. If one cannot
    /// be opened, nothing changes and the error says which.
    public func reopen(_ configuration: LoggingConfiguration) throws(LoggingError) {
        sinkSet.replace(with: try OpenSinks(opening: configuration))
    }
}

extension LoggingSystem {
    /// Opens the sinks of `configuration` and returns a factory for
    /// ``SinkLogHandler``s writing to them, ready for `LoggingSystem.bootstrap`.
    ///
    /// Handlers pick up `LoggingSystem.metadataProvider` when they are made.
    /// Calling this does not bootstrap anything, so tests can make loggers with
    /// `Logger(label:factory:)`.
    ///
    /// - Throws: ``LoggingError`` naming every log file that cannot be opened for
    ///   appending, and why.
    public static func makeLogHandlerFactory(
        _ configuration: LoggingConfiguration
    ) throws(LoggingError) -> @Sendable (String) -> any LogHandler {
        let sinks = try OpenSinks(opening: configuration)
        return { label in
            SinkLogHandler(label: label, sinks: sinks, metadataProvider: LoggingSystem.metadataProvider)
        }
    }

    /// As ``makeLogHandlerFactory(_:)``, with handlers using `metadataProvider`
    /// (none for `nil`) rather than the bootstrapped one.
    public static func makeLogHandlerFactory(
        _ configuration: LoggingConfiguration,
        metadataProvider: Logger.MetadataProvider?
    ) throws(LoggingError) -> @Sendable (String) -> any LogHandler {
        let sinks = try OpenSinks(opening: configuration)
        return { label in
            SinkLogHandler(label: label, sinks: sinks, metadataProvider: metadataProvider)
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import Synchronization

/// The one thread that writes the process's log lines, and the bounded queue it
/// drains.
///
/// A log call formats its line on the caller's thread (an event loop's, often),
/// then only appends it to this queue under a short lock: it never waits for a
/// file, a FIFO, a terminal or syslog. A slow or full disk, a stalled syslog or a
/// FIFO no one reads holds up this thread alone (and so, while it lasts, the
/// other sinks' lines, which wait in the queue or are dropped with the rest).
///
/// The queue holds at most ``Limits/default``: 10,000 lines and 8 MiB (a line
/// counts once per sink it goes to). When it is full, new lines are dropped and
/// counted per sink; a line that fails to be written (`ENOSPC`, `EPIPE`, ...) is
/// dropped and counted too. The first failure of a sink is reported once on
/// standard error, with the sink and the error; once the sink takes lines again,
/// it first gets one line saying how many were dropped and why, and its recovery
/// is reported on standard error too.
///
/// The writer is a plain thread rather than a `NIOThreadPool`: it is one thread
/// for the life of the process that may block for as long as a sink does, it
/// needs no work items, futures or shutdown sequence, and the logging layer stays
/// free of NIOPosix. SIGPIPE is blocked on it, so a FIFO whose reader went away
/// makes its writes fail with `EPIPE` instead of ending the process.
///
/// Lines are written asynchronously: call ``flush(timeout:)`` before exiting (the
/// `nethost` command does) or before reading a log file back.
public final class LogWriter: @unchecked Sendable {
    // @unchecked: every stored `var` below is read and written with `lock` held,
    // except where a comment says the writer's thread alone touches it.

    /// How much may wait to be written.
    struct Limits: Sendable, Hashable {
        /// Lines waiting (one per sink a record goes to), the one being written included.
        var lines: Int
        /// Their bytes.
        var bytes: Int

        static let `default` = Limits(lines: 10_000, bytes: 8 * 1024 * 1024)
    }

    /// A problem with a sink, or its end, for standard error.
    struct Report: Sendable, Hashable {
        var level: Logger.Level
        var message: String
    }

    /// The process's writer, which ``Logging/LoggingSystem/makeLogHandlerFactory(_:)``
    /// gives its handlers. Its thread starts when it is first used.
    public static let shared = LogWriter()

    let limits: Limits
    private let report: @Sendable (Report) -> Void
    private let lock = WriterLock()

    /// Accepted lines not taken by the writer yet, oldest first.
    private var pending: [Entry] = []
    /// The array the writer gave back last time, kept for its capacity.
    private var spare: [Entry] = []
    /// Lines and bytes accepted and not yet written or given up (the queue's fill).
    private var waitingLines = 0
    private var waitingBytes = 0
    /// Lines accepted, and lines finished with (written or dropped), since the start.
    private var accepted: UInt64 = 0
    private var finished: UInt64 = 0
    /// Sinks that dropped lines since they last had one accepted: their report
    /// travels with their next accepted line, or is written once the queue is empty.
    private var sinksWithDrops: [OpenSink] = []
    /// The writer is writing such reports now.
    private var reportingDrops = false
    private var writerIsWaiting = false
    /// Callers of `flush` waiting now.
    private var flushers = 0
    private var closing = false
    private var threadEnded = false
    /// Every line dropped since the start, whatever the sink and the reason: what the
    /// statistics report (`droppedLines`). Kept here as well as per sink because the
    /// writer outlives its sinks, and an atomic so that reading it takes no lock.
    private let droppedTotal = Atomic<Int>(0)

    /// Lines dropped since the start, all sinks together: the queue was full, or a
    /// sink failed to take them.
    public var droppedLines: Int { droppedTotal.load(ordering: .relaxed) }

    init(limits: Limits = .default, report: @escaping @Sendable (Report) -> Void = LogWriter.reportOnStandardError) {
        self.limits = limits
        self.report = report
        Self.startThread(for: self)
    }

    /// A line for one sink.
    private struct Entry {
        var sink: OpenSink
        var line: LogLine
        var level: Logger.Level
        /// Lines of this sink dropped since the one accepted before this.
        var droppedBefore: Int
    }

    // MARK: The callers' side

    /// Queues `line` for every sink of `sinks` whose levels take `level`, or drops
    /// it for a sink, counting it, when the queue is full. Never waits for I/O.
    func enqueue(_ line: LogLine, level: Logger.Level, to sinks: [OpenSink]) {
        let size = line.bytes.count
        lock.lock()
        defer { lock.unlock() }
        var added = false
        for sink in sinks where sink.levels.contains(level) {
            guard !closing, waitingLines < limits.lines, waitingBytes + size <= limits.bytes else {
                sink.queueDrops += 1
                sink.droppedLines.add(1, ordering: .relaxed)
                droppedTotal.add(1, ordering: .relaxed)
                if !sink.listedForDrops {
                    sink.listedForDrops = true
                    sinksWithDrops.append(sink)
                }
                continue
            }
            pending.append(Entry(sink: sink, line: line, level: level, droppedBefore: sink.queueDrops))
            sink.queueDrops = 0
            waitingLines += 1
            waitingBytes += size
            accepted += 1
            added = true
        }
        if added, writerIsWaiting {
            writerIsWaiting = false
            lock.signal(.work)
        }
    }

    /// Waits until every line accepted before the call has been written (or given
    /// up on), and every drop reported where it can be, for at most `timeout`.
    /// Returns whether that happened in time; lines still waiting stay queued.
    @discardableResult
    public func flush(timeout: Duration = .seconds(2)) -> Bool {
        let deadline = WriterLock.deadline(after: timeout)
        lock.lock()
        defer { lock.unlock() }
        let target = accepted
        flushers += 1
        defer { flushers -= 1 }
        while !(finished >= target && sinksWithDrops.isEmpty && !reportingDrops) {
            if threadEnded { return false }
            if !lock.wait(.progress, until: deadline) {
                return finished >= target && sinksWithDrops.isEmpty && !reportingDrops
            }
        }
        return true
    }

    /// Flushes as ``flush(timeout:)`` does, then stops the thread once the queue is
    /// empty; lines logged afterwards are dropped and counted. For writers other
    /// than the shared one (tests).
    @discardableResult
    func close(timeout: Duration = .seconds(2)) -> Bool {
        lock.lock()
        closing = true
        if writerIsWaiting {
            writerIsWaiting = false
            lock.signal(.work)
        }
        lock.unlock()
        return flush(timeout: timeout)
    }

    /// Lines waiting in the queue, the one being written included.
    var waitingLineCount: Int {
        lock.lock()
        defer { lock.unlock() }
        return waitingLines
    }

    // MARK: The writer's thread

    private static func startThread(for writer: LogWriter) {
        let context = Unmanaged.passRetained(writer).toOpaque()
        #if canImport(Darwin)
        var thread: pthread_t?
        let body: @convention(c) (UnsafeMutableRawPointer) -> UnsafeMutableRawPointer? = { context in
            Unmanaged<LogWriter>.fromOpaque(context).takeRetainedValue().run()
            return nil
        }
        let result = pthread_create(&thread, nil, body, context)
        if result == 0, let thread { pthread_detach(thread) }
        #else
        var thread = pthread_t()
        let body: @convention(c) (UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? = { context in
            guard let context else { return nil }
            Unmanaged<LogWriter>.fromOpaque(context).takeRetainedValue().run()
            return nil
        }
        let result = pthread_create(&thread, nil, body, context)
        if result == 0 { pthread_detach(thread) }
        #endif
        precondition(result == 0, "cannot start the log writer's thread: error \(result)")
    }

    private func run() {
        var blocked = sigset_t()
        sigemptyset(&blocked)
        sigaddset(&blocked, SIGPIPE)
        pthread_sigmask(SIG_BLOCK, &blocked, nil)

        lock.lock()
        while true {
            if !pending.isEmpty {
                // Takes the lines; the callers go on appending to the spare array.
                var batch: [Entry] = []
                swap(&batch, &pending)
                swap(&pending, &spare)
                lock.unlock()
                for entry in batch {
                    write(entry)
                    lock.lock()
                    waitingLines -= 1
                    waitingBytes -= entry.line.bytes.count
                    finished += 1
                    lock.unlock()
                }
                batch.removeAll(keepingCapacity: true)
                lock.lock()
                spare = batch
                if flushers > 0 { lock.broadcast(.progress) }
                continue
            }
            if !sinksWithDrops.isEmpty {
                // The queue is empty: drops no later line carries are reported now.
                var trailing: [(OpenSink, Int)] = []
                for sink in sinksWithDrops {
                    sink.listedForDrops = false
                    if sink.queueDrops > 0 {
                        trailing.append((sink, sink.queueDrops))
                        sink.queueDrops = 0
                    }
                }
                sinksWithDrops.removeAll()
                reportingDrops = true
                lock.unlock()
                for (sink, count) in trailing {
                    sink.writer.queueDrops += count
                    _ = writeDropReport(to: sink)
                }
                lock.lock()
                reportingDrops = false
                continue
            }
            if flushers > 0 { lock.broadcast(.progress) }
            if closing { break }
            writerIsWaiting = true
            lock.wait(.work)
        }
        threadEnded = true
        lock.broadcast(.progress)
        lock.unlock()
    }

    /// Writes one line, after the report of the lines its sink dropped before it.
    private func write(_ entry: Entry) {
        let sink = entry.sink
        sink.writer.queueDrops += entry.droppedBefore
        if sink.writer.queueDrops > 0 || sink.writer.writeDrops > 0 {
            guard writeDropReport(to: sink) else {
                dropAfterFailure(sink)
                return
            }
        }
        switch sink.output.write(entry.line, level: entry.level) {
        case .written:
            break
        case .failed(let code):
            noteFailure(of: sink, errno: code)
            dropAfterFailure(sink)
        }
    }

    private func dropAfterFailure(_ sink: OpenSink) {
        sink.writer.writeDrops += 1
        sink.droppedLines.add(1, ordering: .relaxed)
        droppedTotal.add(1, ordering: .relaxed)
    }

    /// Tells `sink` how many of its lines were dropped and why; on success forgets
    /// them, and reports the end of a failure. Returns whether the sink took it.
    private func writeDropReport(to sink: OpenSink) -> Bool {
        let message = Self.dropReport(
            name: sink.output.name, writeDrops: sink.writer.writeDrops, failure: sink.writer.failure,
            queueDrops: sink.writer.queueDrops, limits: limits)
        let line = LogLine(time: .now(), level: .warning, label: "nethost", message: message, metadata: nil)
        switch sink.output.write(line, level: .warning) {
        case .written:
            if sink.writer.failure != nil {
                let total = sink.writer.writeDrops + sink.writer.queueDrops
                report(Report(
                    level: .notice,
                    message: "log: \(sink.output.name) takes lines again; \(Self.lines(total)) dropped meanwhile"))
            }
            sink.writer = OpenSink.WriterState()
            return true
        case .failed(let code):
            noteFailure(of: sink, errno: code)
            return false
        }
    }

    /// Reports the first failure of a run of them.
    private func noteFailure(of sink: OpenSink, errno code: Int32) {
        guard sink.writer.failure == nil else { return }
        sink.writer.failure = code
        report(Report(
            level: .error,
            message: "log: cannot write to \(sink.output.name): \(Self.describe(errno: code)); "
                + "its lines are dropped, and counted, until it takes them again"))
    }

    // MARK: Words

    static func dropReport(name: String, writeDrops: Int, failure: Int32?, queueDrops: Int, limits: Limits) -> String {
        let queueFull = "because the log queue was full (it holds \(limits.lines) lines or \(bytes(limits.bytes)))"
        var parts: [String] = []
        if writeDrops > 0 {
            let reason = failure.map { ": " + words(errno: $0) } ?? ""
            parts.append("\(lines(writeDrops)) dropped while \(name) was not writable\(reason)")
        }
        if queueDrops > 0 {
            parts.append(parts.isEmpty ? "\(lines(queueDrops)) dropped \(queueFull)" : "\(queueDrops) more \(queueFull)")
        }
        return "log: " + parts.joined(separator: "; ")
    }

    static func lines(_ count: Int) -> String {
        count == 1 ? "1 line" : "\(count) lines"
    }

    private static func bytes(_ count: Int) -> String {
        count % (1024 * 1024) == 0 ? "\(count / (1024 * 1024)) MiB" : "\(count) bytes"
    }

    /// `No space left on device (ENOSPC)`.
    static func describe(errno code: Int32) -> String {
        guard let symbol = errnoSymbol(code) else { return words(errno: code) }
        return "\(words(errno: code)) (\(symbol))"
    }

    /// `No space left on device`. `strerror` is called on the writer's thread only.
    private static func words(errno code: Int32) -> String {
        strerror(code).map { String(cString: $0) } ?? "error \(code)"
    }

    private static func errnoSymbol(_ code: Int32) -> String? {
        switch code {
        case ENOSPC: return "ENOSPC"
        case EDQUOT: return "EDQUOT"
        case EFBIG: return "EFBIG"
        case EIO: return "EIO"
        case EPIPE: return "EPIPE"
        case EAGAIN: return "EAGAIN"
        case EBADF: return "EBADF"
        case EINVAL: return "EINVAL"
        case EROFS: return "EROFS"
        case EACCES: return "EACCES"
        case EPERM: return "EPERM"
        case ENOENT: return "ENOENT"
        case ENXIO: return "ENXIO"
        case ECONNREFUSED: return "ECONNREFUSED"
        case ENOTCONN: return "ENOTCONN"
        default: return nil
        }
    }

    /// Reports go to standard error as log lines, written by the writer's thread.
    @Sendable static func reportOnStandardError(_ report: Report) {
        let line = LogLine(time: .now(), level: report.level, label: "nethost", message: report.message, metadata: nil)
        _ = FileDescriptorOutput.standardError.write(line, level: report.level)
    }
}

/// A pthread mutex with the two condition variables the writer needs: `work`
/// (lines to write) and `progress` (lines written). Synchronization's `Mutex` has
/// no condition variable.
final class WriterLock: @unchecked Sendable {
    // @unchecked: the pthread objects are made for use from several threads.
    enum Condition: Int {
        case work = 0
        case progress = 1
    }

    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let conditions: UnsafeMutablePointer<pthread_cond_t>

    init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        conditions = .allocate(capacity: 2)
        conditions.initialize(repeating: pthread_cond_t(), count: 2)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        #if !canImport(Darwin)
        // Timed waits measure the monotonic clock, not the wall clock.
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        #endif
        pthread_cond_init(conditions, &attributes)
        pthread_cond_init(conditions + 1, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(conditions)
        pthread_cond_destroy(conditions + 1)
        conditions.deallocate()
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func lock() { pthread_mutex_lock(mutex) }
    func unlock() { pthread_mutex_unlock(mutex) }
    func signal(_ condition: Condition) { pthread_cond_signal(conditions + condition.rawValue) }
    func broadcast(_ condition: Condition) { pthread_cond_broadcast(conditions + condition.rawValue) }

    /// Waits for `condition` (or a spurious wake-up), the lock held.
    func wait(_ condition: Condition) {
        pthread_cond_wait(conditions + condition.rawValue, mutex)
    }

    /// A point on the monotonic clock, in nanoseconds.
    static func now() -> UInt64 {
        var time = timespec()
        #if canImport(Darwin)
        clock_gettime(CLOCK_UPTIME_RAW, &time)
        #else
        clock_gettime(CLOCK_MONOTONIC, &time)
        #endif
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }

    static func deadline(after timeout: Duration) -> UInt64 {
        let (seconds, attoseconds) = timeout.components
        let nanoseconds = max(0, seconds) &* 1_000_000_000 &+ max(0, attoseconds) / 1_000_000_000
        return now() &+ UInt64(nanoseconds)
    }

    /// As ``wait(_:)``, until `deadline` at the latest; false once it has passed.
    func wait(_ condition: Condition, until deadline: UInt64) -> Bool {
        let current = Self.now()
        guard current < deadline else { return false }
        #if canImport(Darwin)
        let remaining = deadline - current
        var relative = timespec(tv_sec: Int(remaining / 1_000_000_000), tv_nsec: Int(remaining % 1_000_000_000))
        pthread_cond_timedwait_relative_np(conditions + condition.rawValue, mutex, &relative)
        #else
        var absolute = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
        pthread_cond_timedwait(conditions + condition.rawValue, mutex, &absolute)
        #endif
        return true
    }
}

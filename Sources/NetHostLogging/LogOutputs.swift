#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import Synchronization

/// What became of one line handed to an output.
enum LogWriteResult: Sendable, Hashable {
    case written
    /// Not written, or not all of it; `errno` says why.
    case failed(errno: Int32)
}

/// Where formatted lines end up. Only the ``LogWriter``'s thread writes to an
/// output (tests call `write` directly), so a write may block: it blocks the
/// writer, never an event loop. Each output still serialises its own writes,
/// since one output (a standard stream) can be shared by several writers.
protocol LogOutput: Sendable {
    /// What messages about this output call it: a file's path, `standard error`.
    var name: String { get }
    func write(_ line: LogLine, level: Logger.Level) -> LogWriteResult
}

/// A file descriptor written with one `write(2)` per line, under a lock, so that
/// lines from different threads never interleave.
final class FileDescriptorOutput: LogOutput {
    private struct State {
        /// -1 while a FIFO waits to be opened by the writer (see ``appending(toFileAt:)``).
        var descriptor: Int32
        /// A write failed part-way through a line: the next write starts a new line.
        var brokenLine = false
        /// The last write ended in `EAGAIN`: the next one does not wait for room.
        var wouldBlock = false
    }

    let name: String
    /// The descriptor. Holding the lock is what makes a line one unit.
    private let state: Mutex<State>
    private let ownsDescriptor: Bool
    /// For a FIFO opened by the writer: the path to open.
    private let deferredPath: String?

    init(descriptor: Int32, ownsDescriptor: Bool, name: String? = nil) {
        self.state = Mutex(State(descriptor: descriptor))
        self.ownsDescriptor = ownsDescriptor
        self.name = name ?? "file descriptor \(descriptor)"
        self.deferredPath = nil
    }

    private init(openingFIFOAt path: String) {
        self.state = Mutex(State(descriptor: -1))
        self.ownsDescriptor = true
        self.name = path
        self.deferredPath = path
    }

    /// One lock per standard stream for the whole process, whichever factory writes.
    static let standardError = FileDescriptorOutput(descriptor: 2, ownsDescriptor: false, name: "standard error")
    static let standardOutput = FileDescriptorOutput(descriptor: 1, ownsDescriptor: false, name: "standard output")

    /// Opens `path` for appending, creating it if needed (mode 0666 less the umask,
    /// as `fopen(3)` would). Returns `errno` when it cannot.
    ///
    /// The open itself must not wait: it happens at start-up, on the caller's
    /// thread. `O_NONBLOCK` makes opening a FIFO that no one reads fail with `ENXIO`
    /// at once instead of waiting for a reader; such a FIFO is opened later, by the
    /// writer's thread, on its first line. Anything opened now is put back into
    /// blocking mode: a full FIFO or pipe then makes the writer wait, as a slow disk
    /// does (for a regular file `O_NONBLOCK` changes nothing: the writer's thread,
    /// not the flag, is what keeps a slow disk away from the event loops).
    static func appending(toFileAt path: String) -> Result<FileDescriptorOutput, LoggingError.FileFailure> {
        let descriptor = path.withCString { open($0, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0o666) }
        guard descriptor >= 0 else {
            let code = errno
            if code == ENXIO, isFIFO(path) {
                return .success(FileDescriptorOutput(openingFIFOAt: path))
            }
            return .failure(LoggingError.FileFailure(path: path, errno: code))
        }
        let flags = fcntl(descriptor, F_GETFL)
        if flags >= 0 { _ = fcntl(descriptor, F_SETFL, flags & ~O_NONBLOCK) }
        return .success(FileDescriptorOutput(descriptor: descriptor, ownsDescriptor: true, name: path))
    }

    private static func isFIFO(_ path: String) -> Bool {
        var status = stat()
        guard stat(path, &status) == 0 else { return false }
        return status.st_mode & S_IFMT == S_IFIFO
    }

    func write(_ line: LogLine, level: Logger.Level) -> LogWriteResult {
        line.bytes.withUnsafeBytes { bytes in
            state.withLock { state in
                if state.descriptor < 0, let path = deferredPath {
                    // Waits for a reader: this is the writer's thread.
                    let opened = Self.retryingInterrupts { path.withCString { open($0, O_WRONLY | O_APPEND | O_CLOEXEC) } }
                    guard opened >= 0 else { return .failed(errno: errno) }
                    state.descriptor = opened
                }
                if state.brokenLine {
                    let newline: [UInt8] = [UInt8(ascii: "\n")]
                    let result = newline.withUnsafeBytes { Self.writeAll($0, to: &state) }
                    guard result == .written else { return result }
                    state.brokenLine = false
                }
                return Self.writeAll(bytes, to: &state)
            }
        }
    }

    /// Writes everything, going on after a short write or a signal. A descriptor
    /// in non-blocking mode (a standard stream can be one) that is full gets up to
    /// a second to take the start of a line (none if the last line already failed
    /// so, so that a stuck reader costs the writer one second, not one per line)
    /// and ten to take the rest of a line it has begun. Any other failure drops the
    /// rest of the line.
    private static func writeAll(_ bytes: UnsafeRawBufferPointer, to state: inout State) -> LogWriteResult {
        guard var next = bytes.baseAddress else { return .written }
        var remaining = bytes.count
        while remaining > 0 {
            #if canImport(Darwin)
            let written = Darwin.write(state.descriptor, next, remaining)
            #elseif canImport(Musl)
            let written = Musl.write(state.descriptor, next, remaining)
            #else
            let written = Glibc.write(state.descriptor, next, remaining)
            #endif
            if written < 0 {
                let code = errno
                if code == EINTR { continue }
                let begun = remaining < bytes.count
                if code == EAGAIN || code == EWOULDBLOCK {
                    let patience: Int32 = begun ? 10_000 : (state.wouldBlock ? 0 : 1_000)
                    if waitUntilWritable(state.descriptor, milliseconds: patience) { continue }
                    state.wouldBlock = true
                }
                if begun { state.brokenLine = true }
                return .failed(errno: code)
            }
            if written == 0 {
                if remaining < bytes.count { state.brokenLine = true }
                return .failed(errno: EIO)
            }
            next += written
            remaining -= written
        }
        state.wouldBlock = false
        return .written
    }

    private static func waitUntilWritable(_ descriptor: Int32, milliseconds: Int32) -> Bool {
        var entry = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
        let ready = retryingInterrupts { poll(&entry, 1, milliseconds) }
        return ready > 0 && entry.revents & Int16(POLLOUT) != 0
    }

    private static func retryingInterrupts(_ call: () -> Int32) -> Int32 {
        while true {
            let result = call()
            if result >= 0 || errno != EINTR { return result }
        }
    }

    deinit {
        if ownsDescriptor {
            state.withLock { state in
                if state.descriptor >= 0 { _ = close(state.descriptor) }
                state.descriptor = -1
            }
        }
    }
}

/// The system log. Records carry no timestamp of their own (syslog adds one)
/// and their level as the priority.
final class SyslogOutput: LogOutput {
    /// `openlog(3)` is process-wide and keeps the identifier's pointer, not its
    /// text: the copy in use lives here until the next `openlog` replaces it (a
    /// reload that opens the sinks again), then it is freed. The lock also keeps
    /// one `openlog` from running beside another or beside a `syslog` call.
    private static let identifier = Mutex<UnsafeMutablePointer<CChar>?>(nil)

    private let facility: Int32

    let name = "the system log"

    init(identifier: String, facility: SyslogFacility) {
        self.facility = facility.code
        Self.identifier.withLock { current in
            let copy = strdup(identifier)
            openlog(copy, LOG_PID | LOG_NDELAY, facility.code)
            free(current)  // syslog refers to the new copy now
            current = copy
        }
    }

    /// `syslog(3)` says nothing of a record it could not send: this always answers
    /// `.written`.
    func write(_ line: LogLine, level: Logger.Level) -> LogWriteResult {
        var message = Array(line.syslogMessage)
        message.append(0)
        let priority = facility | Self.priority(of: level)
        message.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { text in
                guard let text = text.baseAddress else { return }
                Self.identifier.withLock { _ in
                    withVaList([text]) { vsyslog(priority, "%s", $0) }
                }
            }
        }
        return .written
    }

    /// The syslog priority for a swift-log level.
    static func priority(of level: Logger.Level) -> Int32 {
        switch level {
        case .trace, .debug: return LOG_DEBUG
        case .info: return LOG_INFO
        case .notice: return LOG_NOTICE
        case .warning: return LOG_WARNING
        case .error: return LOG_ERR
        case .critical: return LOG_CRIT
        }
    }
}

extension SyslogFacility {
    var code: Int32 {
        switch self {
        case .user: return LOG_USER
        case .mail: return LOG_MAIL
        case .daemon: return LOG_DAEMON
        case .auth: return LOG_AUTH
        case .syslog: return LOG_SYSLOG
        case .lpr: return LOG_LPR
        case .news: return LOG_NEWS
        case .uucp: return LOG_UUCP
        case .cron: return LOG_CRON
        case .authpriv: return LOG_AUTHPRIV
        case .ftp: return LOG_FTP
        case .local0: return LOG_LOCAL0
        case .local1: return LOG_LOCAL1
        case .local2: return LOG_LOCAL2
        case .local3: return LOG_LOCAL3
        case .local4: return LOG_LOCAL4
        case .local5: return LOG_LOCAL5
        case .local6: return LOG_LOCAL6
        case .local7: return LOG_LOCAL7
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import Synchronization

/// Where formatted lines end up. Implementations are shared by every handler a
/// factory makes, from any thread, so each serialises its own writes.
protocol LogOutput: Sendable {
    func write(_ line: LogLine, level: Logger.Level)
}

/// A file descriptor written with one `write(2)` per line, under a lock, so that
/// lines from different threads never interleave.
final class FileDescriptorOutput: LogOutput {
    /// The descriptor. Holding the lock is what makes a line one unit.
    private let descriptor: Mutex<Int32>
    private let ownsDescriptor: Bool

    init(descriptor: Int32, ownsDescriptor: Bool) {
        self.descriptor = Mutex(descriptor)
        self.ownsDescriptor = ownsDescriptor
    }

    /// One lock per standard stream for the whole process, whichever factory writes.
    static let standardError = FileDescriptorOutput(descriptor: 2, ownsDescriptor: false)
    static let standardOutput = FileDescriptorOutput(descriptor: 1, ownsDescriptor: false)

    /// Opens `path` for appending, creating it if needed (mode 0666 less the umask,
    /// as `fopen(3)` would). Returns `errno` when it cannot.
    static func appending(toFileAt path: String) -> Result<FileDescriptorOutput, LoggingError.FileFailure> {
        let descriptor = path.withCString { open($0, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o666) }
        guard descriptor >= 0 else {
            return .failure(LoggingError.FileFailure(path: path, errno: errno))
        }
        return .success(FileDescriptorOutput(descriptor: descriptor, ownsDescriptor: true))
    }

    func write(_ line: LogLine, level: Logger.Level) {
        line.bytes.withUnsafeBytes { bytes in
            descriptor.withLock { descriptor in
                Self.writeAll(bytes, to: descriptor)
            }
        }
    }

    /// Writes everything, going on after a short write or a signal. Any other
    /// failure drops the rest of the line: there is nowhere left to report it.
    private static func writeAll(_ bytes: UnsafeRawBufferPointer, to descriptor: Int32) {
        guard var next = bytes.baseAddress else { return }
        var remaining = bytes.count
        while remaining > 0 {
            #if canImport(Darwin)
            let written = Darwin.write(descriptor, next, remaining)
            #elseif canImport(Musl)
            let written = Musl.write(descriptor, next, remaining)
            #else
            let written = Glibc.write(descriptor, next, remaining)
            #endif
            if written < 0 {
                if errno == EINTR { continue }
                return
            }
            if written == 0 { return }
            next += written
            remaining -= written
        }
    }

    deinit {
        if ownsDescriptor {
            descriptor.withLock { descriptor in
                _ = close(descriptor)
                descriptor = -1
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

    init(identifier: String, facility: SyslogFacility) {
        self.facility = facility.code
        Self.identifier.withLock { current in
            let copy = strdup(identifier)
            openlog(copy, LOG_PID | LOG_NDELAY, facility.code)
            free(current)  // syslog refers to the new copy now
            current = copy
        }
    }

    func write(_ line: LogLine, level: Logger.Level) {
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

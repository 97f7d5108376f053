import Foundation
import SocketTestSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A real program started for a test, its output captured to files.
///
/// The process is spawned directly (`posix_spawn`, no shell), with stdin from
/// `/dev/null`, stdout and stderr to `<name>.stdout.log` / `<name>.stderr.log` in an
/// output directory, the default signal dispositions, an empty signal mask and no
/// file descriptors of the test process but 0, 1 and 2.
///
/// It never outlives its owner: ``stop(timeout:)`` sends SIGTERM, then SIGKILL
/// after the timeout, and reaps it; `deinit` does the same, so `defer { p.stop() }`
/// or simply dropping the last reference is enough. Processes still running when the
/// test process exits normally are killed by an `atexit` hook. A test process that
/// crashes (a trap) runs neither, and can leave its children behind.
final class ManagedProcess: Sendable {
    /// How a process ended.
    enum Termination: Sendable, Equatable, CustomStringConvertible {
        case exited(Int32)
        case signalled(Int32)

        var description: String {
            switch self {
            case .exited(let code): return "exited with status \(code)"
            case .signalled(let signal): return "killed by signal \(signal)"
            }
        }
    }

    /// A short name for messages and log file names (`haproxy`, `nginx`, `nethost`).
    let name: String
    let pid: pid_t
    let executablePath: String
    let arguments: [String]
    let stdoutPath: String
    let stderrPath: String

    /// Keeps an output directory the process made for itself alive as long as the process.
    private let ownedDirectory: TemporaryDirectory?
    /// Set once the process has been reaped; all `waitpid` calls happen under this lock.
    private let termination = Locked<Termination?>(nil)

    /// Starts `executable` (a path, or a name looked up on `PATH` and the sbin folders).
    ///
    /// - Parameters:
    ///   - environment: variables added to (or replacing) the test process's own;
    ///     with `inheritEnvironment: false`, the whole environment.
    ///   - workingDirectory: where the program starts; the test's by default.
    ///   - outputDirectory: where the two log files go; a new temporary directory by default.
    init(
        executable: String,
        arguments: [String] = [],
        environment: [String: String] = [:],
        inheritEnvironment: Bool = true,
        workingDirectory: String? = nil,
        outputDirectory: String? = nil,
        name: String? = nil
    ) throws {
        let path = try Self.resolveExecutable(executable)
        let name = name ?? (path as NSString).lastPathComponent
        let directory: String
        if let outputDirectory {
            self.ownedDirectory = nil
            directory = outputDirectory
        } else {
            let owned = try TemporaryDirectory(prefix: name)
            self.ownedDirectory = owned
            directory = owned.path
        }
        self.name = name
        self.executablePath = path
        self.arguments = arguments
        self.stdoutPath = "\(directory)/\(name).stdout.log"
        self.stderrPath = "\(directory)/\(name).stderr.log"

        var variables = inheritEnvironment ? ProcessInfo.processInfo.environment : [:]
        variables.merge(environment) { $1 }
        self.pid = try spawn(
            path: path,
            arguments: [path] + arguments,
            environment: variables.map { "\($0.key)=\($0.value)" },
            workingDirectory: workingDirectory,
            stdoutPath: self.stdoutPath,
            stderrPath: self.stderrPath
        )
        LiveProcesses.shared.insert(self.pid)
    }

    deinit {
        self.stop()
    }

    /// Finds a program: a path is taken as it is; a bare name is looked for on `PATH`,
    /// then in `/usr/local/sbin`, `/usr/sbin` and `/sbin` (where Debian puts haproxy
    /// and nginx, often not on a non-root `PATH`).
    static func resolveExecutable(_ executable: String) throws -> String {
        if executable.contains("/") {
            guard access(executable, X_OK) == 0 else {
                throw FixtureError("\(executable) is not an executable file")
            }
            return executable
        }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        let folders = path.split(separator: ":").map(String.init) + ["/usr/local/sbin", "/usr/sbin", "/sbin"]
        for folder in folders where !folder.isEmpty {
            let candidate = "\(folder)/\(executable)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        throw FixtureError("\(executable) not found on PATH (\(path)) nor in /usr/local/sbin, /usr/sbin, /sbin")
    }

    // MARK: Output

    /// Everything written to stdout so far.
    var standardOutput: String { Self.read(self.stdoutPath) }

    /// Everything written to stderr so far.
    var standardError: String { Self.read(self.stderrPath) }

    /// stdout then stderr, each as written so far.
    var output: String {
        let out = self.standardOutput
        let err = self.standardError
        return out.isEmpty ? err : err.isEmpty ? out : out + (out.hasSuffix("\n") ? "" : "\n") + err
    }

    private static func read(_ path: String) -> String {
        guard let data = FileManager.default.contents(atPath: path) else { return "" }
        return String(decoding: data, as: UTF8.self)
    }

    /// Waits for a line of stdout or stderr that contains `text`, and returns it.
    ///
    /// Throws if the process exits first (after one last look at its output) or
    /// after `timeout`; the error shows the tail of the output.
    @discardableResult
    func waitForLogLine(containing text: String, timeout: Duration = .seconds(10)) async throws -> String {
        var exited: Termination?
        let line = try await poll(timeout: timeout) { () -> String? in
            let ended = self.checkTermination()
            if let line = self.firstLine(containing: text) { return line }
            if let ended {
                exited = ended
                return ""
            }
            return nil
        }
        if let exited {
            throw FixtureError(
                "\(self.name) (pid \(self.pid)) \(exited) before logging \"\(text)\"; its output:\n\(tail(self.output))")
        }
        guard let line else {
            throw FixtureError(
                "\(self.name) (pid \(self.pid)) logged no line containing \"\(text)\" in \(timeout); its output:\n\(tail(self.output))"
            )
        }
        return line
    }

    private func firstLine(containing text: String) -> String? {
        for source in [self.standardOutput, self.standardError] {
            for line in source.split(separator: "\n") where line.contains(text) {
                return String(line)
            }
        }
        return nil
    }

    // MARK: Lifetime

    /// Whether the process is still running (reaps it if it has ended).
    var isRunning: Bool { self.checkTermination() == nil }

    /// How the process ended, or nil while it runs. Reaps it if it has ended.
    func checkTermination() -> Termination? {
        self.termination.withLock { termination in
            if termination == nil { termination = self.reap(blocking: false) }
            return termination
        }
    }

    /// Waits for the process to end by itself; throws after `timeout`, leaving it running.
    @discardableResult
    func waitForExit(timeout: Duration = .seconds(10)) async throws -> Termination {
        guard let ended = try await poll(timeout: timeout, { self.checkTermination() }) else {
            throw FixtureError("\(self.name) (pid \(self.pid)) still running after \(timeout); its output:\n\(tail(self.output))")
        }
        return ended
    }

    /// Sends `signal` to the process, unless it has already been reaped (so a reused
    /// PID is never signalled).
    func send(signal: Int32) {
        self.termination.withLock { termination in
            if termination == nil { _ = kill(self.pid, signal) }
        }
    }

    /// Stops the process: SIGTERM, a second SIGTERM 200 ms later if it still runs
    /// (nethost drains open connections for `shutdown_timeout` after the first, and
    /// closes them at once at the second: a test that stops it wants it stopped;
    /// the drain has tests of its own), then SIGKILL if it still runs after `timeout`;
    /// reaps it and returns how it ended. Calling it again returns the same answer.
    @discardableResult
    func stop(timeout: Duration = .seconds(5)) -> Termination {
        self.termination.withLock { termination in
            if let termination { return termination }
            if let ended = self.reap(blocking: false) {
                termination = ended
                return ended
            }
            _ = kill(self.pid, SIGTERM)
            let clock = ContinuousClock()
            let deadline = clock.now.advanced(by: timeout)
            var again: ContinuousClock.Instant? = clock.now.advanced(by: min(timeout / 2, .milliseconds(200)))
            while clock.now < deadline {
                if let ended = self.reap(blocking: false) {
                    termination = ended
                    return ended
                }
                if let due = again, clock.now >= due {
                    _ = kill(self.pid, SIGTERM)
                    again = nil
                }
                usleep(5_000)
            }
            _ = kill(self.pid, SIGKILL)
            let ended = self.reap(blocking: true) ?? .signalled(SIGKILL)
            termination = ended
            return ended
        }
    }

    /// `waitpid` for this process; call only under the `termination` lock.
    private func reap(blocking: Bool) -> Termination? {
        var status: Int32 = 0
        while true {
            let result = waitpid(self.pid, &status, blocking ? 0 : WNOHANG)
            if result == self.pid {
                LiveProcesses.shared.remove(self.pid)
                // The wait status: low 7 bits the terminating signal, or 0 and the
                // exit code in the next byte.
                let signal = status & 0x7f
                return signal == 0 ? .exited((status >> 8) & 0xff) : .signalled(signal)
            }
            if result == 0 { return nil }
            if errno == EINTR { continue }
            // ECHILD: already reaped elsewhere; nothing left to wait for.
            LiveProcesses.shared.remove(self.pid)
            return .exited(-1)
        }
    }
}

/// PIDs of processes started and not yet reaped, killed at normal exit.
private final class LiveProcesses: Sendable {
    static let shared: LiveProcesses = {
        atexit {
            for pid in LiveProcesses.shared.pids.current {
                _ = kill(pid, SIGKILL)
            }
        }
        return LiveProcesses()
    }()

    private let pids = Locked(Set<pid_t>())

    func insert(_ pid: pid_t) { self.pids.withLock { _ = $0.insert(pid) } }
    func remove(_ pid: pid_t) { self.pids.withLock { _ = $0.remove(pid) } }
}

// MARK: - posix_spawn

/// `posix_spawn_file_actions_addchdir_np` and `..._addclosefrom_np` exist in glibc
/// (2.29, 2.34) but behind `_GNU_SOURCE`, which Swift's Glibc module does not see:
/// look them up at run time.
private typealias AddChdir = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32
private typealias AddClosefrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32

private func lookUp<F>(_ symbol: String, as type: F.Type) -> F? {
    guard let handle = dlopen(nil, RTLD_NOW), let address = dlsym(handle, symbol) else { return nil }
    return unsafeBitCast(address, to: type)
}

private func spawn(
    path: String,
    arguments: [String],
    environment: [String],
    workingDirectory: String?,
    stdoutPath: String,
    stderrPath: String
) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    var attributes = posix_spawnattr_t()
    posix_spawn_file_actions_init(&actions)
    posix_spawnattr_init(&attributes)
    defer {
        posix_spawn_file_actions_destroy(&actions)
        posix_spawnattr_destroy(&attributes)
    }

    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, stdoutPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_addopen(&actions, 2, stderrPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    if let closefrom = lookUp("posix_spawn_file_actions_addclosefrom_np", as: AddClosefrom.self) {
        _ = closefrom(&actions, 3)
    }
    if let workingDirectory {
        guard let addChdir = lookUp("posix_spawn_file_actions_addchdir_np", as: AddChdir.self) else {
            throw FixtureError("this libc cannot set a spawned process's working directory")
        }
        _ = workingDirectory.withCString { addChdir(&actions, $0) }
    }

    // Default dispositions for every signal and nothing blocked: whatever the test
    // process ignores or blocks, the program must die of SIGTERM.
    var allSignals = sigset_t()
    var noSignals = sigset_t()
    sigfillset(&allSignals)
    sigemptyset(&noSignals)
    posix_spawnattr_setsigdefault(&attributes, &allSignals)
    posix_spawnattr_setsigmask(&attributes, &noSignals)
    #if canImport(Glibc)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
    #else
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_CLOEXEC_DEFAULT))
    #endif

    let argv = arguments.map { strdup($0) } + [nil]
    let envp = environment.map { strdup($0) } + [nil]
    defer {
        argv.forEach { free($0) }
        envp.forEach { free($0) }
    }

    var pid: pid_t = 0
    let result = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
    guard result == 0 else {
        throw FixtureError("cannot start \(path): \(String(cString: strerror(result)))")
    }
    return pid
}

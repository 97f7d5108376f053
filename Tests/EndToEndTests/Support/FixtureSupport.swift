import Foundation
import SocketTestSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A value behind a lock, for the little mutable state fixtures share between threads.
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) {
        self.value = value
    }

    func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        self.lock.lock()
        defer { self.lock.unlock() }
        return try body(&self.value)
    }

    var current: Value { self.withLock { $0 } }
}

/// Calls `check` every `interval` until it returns a value or `timeout` passes
/// (then nil). Sleeps with `Task.sleep`, so waiting holds no thread.
func poll<T>(
    timeout: Duration,
    interval: Duration = .milliseconds(20),
    _ check: () throws -> T?
) async throws -> T? {
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: timeout)
    while true {
        if let value = try check() { return value }
        if clock.now >= deadline { return nil }
        try await Task.sleep(for: interval)
    }
}

extension Duration {
    /// Whole milliseconds, rounded up, for config files and `poll(2)`.
    var milliseconds: Int {
        let (seconds, attoseconds) = self.components
        return Int(seconds) * 1000 + Int((attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000)
    }
}

/// The whole text of a file, read until `read(2)` says the end: `/proc` files
/// report a size of 0, and `String(contentsOfFile:)` returns only the first chunk
/// of a long one (`/proc/net/tcp` with a few hundred sockets). Nil if it cannot be read.
func readWholeFile(_ path: String) -> String? {
    readWholeFileBytes(path).map { String(decoding: $0, as: UTF8.self) }
}

/// The whole of a file as bytes, read as `readWholeFile` does.
func readWholeFileBytes(_ path: String) -> [UInt8]? {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 64 * 1024)
    while true {
        let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count > 0 {
            bytes += chunk[..<count]
        } else if count == 0 {
            return bytes
        } else if errno != EINTR {
            return nil
        }
    }
}

/// The last `count` lines of `text`, indented, for error messages.
func tail(_ text: String, lines count: Int = 30) -> String {
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    return lines.suffix(count).map { "    | \($0)" }.joined(separator: "\n")
}

/// A fresh directory under the system's temporary directory, removed when the last
/// reference goes away. Set `NETHOST_KEEP_TEST_DIRS=1` to keep it for a post-mortem.
final class TemporaryDirectory: Sendable {
    let path: String

    init(prefix: String) throws {
        let base = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        let path = "\(base)/nethost-\(prefix)-\(UUID().uuidString.prefix(8))"
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        } catch {
            throw FixtureError("cannot create the temporary directory \(path): \(error)")
        }
        self.path = path
    }

    /// The absolute path of `name` inside this directory.
    func file(_ name: String) -> String {
        "\(self.path)/\(name)"
    }

    /// Writes `text` to `name` (creating sub-folders) and returns its absolute path.
    @discardableResult
    func write(_ text: String, to name: String) throws -> String {
        let path = self.file(name)
        let folder = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Creates the sub-folder `name` and returns its absolute path.
    func directory(_ name: String) throws -> String {
        let path = self.file(name)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    deinit {
        if ProcessInfo.processInfo.environment["NETHOST_KEEP_TEST_DIRS"] == nil {
            try? FileManager.default.removeItem(atPath: self.path)
        }
    }
}

/// `127.0.0.1:8080` or `[::1]:8080`, as HAProxy and nginx write addresses.
func hostPort(_ host: String, _ port: Int) -> String {
    host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
}

/// Starts a server program and waits until it listens on every one of `listeners`.
///
/// A missing program, one that exits early (a bad config, a port in use) or one that
/// never listens makes this throw, with the program's output in the message; the
/// process is stopped before throwing.
func launchServer(
    program: String,
    installHint: String,
    arguments: [String],
    directory: TemporaryDirectory,
    listeners: [(host: String, port: Int)],
    timeout: Duration
) async throws -> ManagedProcess {
    let path: String
    do {
        path = try ManagedProcess.resolveExecutable(program)
    } catch {
        throw FixtureError("\(program) is needed by this test but is not installed (\(error)); install it with: \(installHint)")
    }
    let process = try ManagedProcess(executable: path, arguments: arguments, outputDirectory: directory.path, name: program)
    do {
        for listener in listeners {
            try await waitForPort(host: listener.host, port: listener.port, timeout: timeout) {
                process.checkTermination().map { "\(program) \($0)" }
            }
        }
    } catch {
        process.stop()
        throw FixtureError(
            "\(program) did not start: \(error)\n  command: \(path) \(arguments.joined(separator: " "))"
                + "\n  (set NETHOST_KEEP_TEST_DIRS=1 to keep \(directory.path))\n  output:\n\(tail(process.output))")
    }
    return process
}

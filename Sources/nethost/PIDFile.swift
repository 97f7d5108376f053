import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The `pidfile` option, kept as Prosody's mod_posix keeps it: written at start
/// and locked (`flock`) for as long as NetHost runs, so a second start on the same
/// config is refused instead of taking over the file; removed at a clean stop.
/// A NetHost that hands its sockets to a successor lets it go then (from the
/// control socket's thread), and the successor takes it.
final class PIDFile: Sendable {
    let path: String
    private let held = Mutex<Int32>(-1)

    init(path: String) {
        self.path = path
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// Locks the file and writes this process's PID into it. Throws, naming the
    /// PID that holds it, when another NetHost runs with the same pidfile.
    func acquire() throws {
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw Failure(description: "could not open the pidfile \(path): \(String(cString: strerror(errno)))")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let reason = errno
            let holder = Self.contents(of: descriptor)
            close(descriptor)
            guard reason == EWOULDBLOCK else {
                throw Failure(description: "could not lock the pidfile \(path): \(String(cString: strerror(reason)))")
            }
            let who = holder.isEmpty ? "another process" : "process \(holder)"
            throw Failure(description: "NetHost is already running: \(who) holds the pidfile \(path)")
        }
        let text = "\(getpid())\n"
        guard ftruncate(descriptor, 0) == 0, pwrite(descriptor, text, text.utf8.count, 0) == text.utf8.count else {
            let reason = String(cString: strerror(errno))
            close(descriptor)
            throw Failure(description: "could not write the pidfile \(path): \(reason)")
        }
        held.withLock { $0 = descriptor }
    }

    /// Removes the file while the lock is still held, then lets the lock go.
    func release() {
        held.withLock { descriptor in
            guard descriptor >= 0 else { return }
            unlink(path)
            close(descriptor)
            descriptor = -1
        }
    }

    private static func contents(of descriptor: Int32) -> String {
        var bytes = [UInt8](repeating: 0, count: 32)
        let count = pread(descriptor, &bytes, bytes.count, 0)
        guard count > 0 else { return "" }
        return String(decoding: bytes[..<count], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

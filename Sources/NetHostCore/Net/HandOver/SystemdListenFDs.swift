#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// systemd's socket activation (sd_listen_fds(3)): a `.socket` unit (or
/// `systemd-socket-activate`) binds the ports and starts NetHost with them as
/// descriptors 3, 4, ...; `LISTEN_FDS` says how many, `LISTEN_PID` for which
/// process (a child that inherited the variables must not take them), and
/// `LISTEN_FDNAMES` optionally names them, colon-separated. Since systemd holds the
/// sockets across a restart, connections that arrive while no NetHost runs wait in
/// their queues instead of being refused.
public struct SystemdListenFDs: Equatable, Sendable {
    /// The first descriptor passed (SD_LISTEN_FDS_START).
    public static let firstDescriptor: Int32 = 3

    public let count: Int
    /// One name per descriptor when systemd gave names.
    public let names: [String]

    /// What the environment passes to `pid`: nil when nothing (no variables, or
    /// they were meant for another process); a malformed value is an error.
    public init?(environment: [String: String], pid: Int32) throws(HandOverError) {
        guard let count = environment["LISTEN_FDS"] else { return nil }
        guard let listenPID = environment["LISTEN_PID"], let owner = Int32(listenPID) else {
            throw HandOverError("LISTEN_FDS is set but LISTEN_PID is not a process id (\(environment["LISTEN_PID"] ?? "unset"))")
        }
        guard owner == pid else { return nil }
        guard let number = Int(count), number >= 0, number < 65_536 else {
            throw HandOverError("LISTEN_FDS is not a number of descriptors: \(count)")
        }
        self.count = number
        let names = environment["LISTEN_FDNAMES"].map { $0.split(separator: ":", omittingEmptySubsequences: false).map(String.init) } ?? []
        self.names = names.count == number ? names : []
    }

    /// The descriptors passed.
    public var descriptors: [Int32] {
        (0 ..< count).map { Self.firstDescriptor + Int32($0) }
    }

    /// Takes the descriptors: marks them close-on-exec (they are this process's
    /// now) and describes each. A descriptor that is not a listening TCP socket (a
    /// UDP or Unix socket of a shared `.socket` unit) is closed and reported in `refused`. The variables are removed, as
    /// sd_listen_fds(1) does, so nothing started later takes them again.
    public func take() -> (listeners: [InheritedListener], refused: [String]) {
        unsetenv("LISTEN_FDS")
        unsetenv("LISTEN_PID")
        unsetenv("LISTEN_FDNAMES")
        var listeners: [InheritedListener] = []
        var refused: [String] = []
        for (index, fd) in descriptors.enumerated() {
            let name = names.isEmpty ? nil : names[index]
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            do {
                listeners.append(try InheritedListener.describing(fd, name: name))
            } catch {
                _ = systemClose(fd)
                refused.append("\(error)")
            }
        }
        return (listeners, refused)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The process's limit on open file descriptors (RLIMIT_NOFILE). Every connection
/// costs one, and when they run out `accept` fails on every port at once, so the
/// server raises its soft limit as far as it may and keeps `max_connections` below it.
public enum DescriptorLimit {
    /// What `raiseToHardLimit` did.
    public struct Change: Sendable, Equatable, CustomStringConvertible {
        public let from: Int
        public let to: Int
        public var description: String {
            "raised the open file limit from \(from) to \(to), the most this process may have (RLIMIT_NOFILE)"
        }
    }

    /// The soft limit now (`ulimit -n`), read afresh each time since the process
    /// may raise it; nil if it cannot be read or is unlimited.
    public static var current: Int? {
        var limit = rlimit()
        guard getrlimit(Self.resource, &limit) == 0, limit.rlim_cur != Self.unlimited else { return nil }
        return Int(clamping: limit.rlim_cur)
    }

    /// Raises the soft limit to the hard one, as nginx's `worker_rlimit_nofile` and
    /// systemd's `LimitNOFILE` do; nil when it is already there or cannot move.
    /// An unlimited hard limit (not allowed for descriptors on Linux) is read as
    /// the kernel's ceiling for one process.
    public static func raiseToHardLimit() -> Change? {
        var limit = rlimit()
        guard getrlimit(Self.resource, &limit) == 0 else { return nil }
        let target = limit.rlim_max == Self.unlimited ? rlim_t(Self.kernelCeiling) : limit.rlim_max
        guard limit.rlim_cur < target else { return nil }
        let from = limit.rlim_cur
        limit.rlim_cur = target
        guard setrlimit(Self.resource, &limit) == 0 else { return nil }
        return Change(from: Int(clamping: from), to: Int(clamping: target))
    }

    /// Descriptors kept out of `max_connections`, beyond those open already, for what
    /// is not a connection and comes later: listening sockets, log files, module
    /// files, outgoing connections. A sixteenth of the limit, at least 16, at most 1024.
    public static func reserve(for limit: Int) -> Int {
        min(1024, max(16, limit / 16))
    }

    /// The most connections `limit` descriptors leave room for when `inUse` are open.
    public static func connectionCeiling(for limit: Int, inUse: Int) -> Int {
        max(1, limit - inUse - reserve(for: limit))
    }

    /// The descriptors this process has open now (Linux: /proc/self/fd, less the one
    /// reading it); 0 where that cannot be read.
    public static var inUse: Int {
        guard let directory = opendir("/proc/self/fd") else { return 0 }
        defer { closedir(directory) }
        var count = 0
        while let entry = readdir(directory) {
            let isDot = withUnsafeBytes(of: entry.pointee.d_name) { name in
                name.first == UInt8(ascii: ".")
            }
            if !isDot { count += 1 }
        }
        return max(0, count - 1)
    }

    /// RLIM_INFINITY, which Swift imports as a macro it cannot evaluate (-1 as unsigned).
    private static let unlimited = rlim_t.max

    /// Linux's default fs.nr_open.
    private static let kernelCeiling = 1_048_576

    #if canImport(Glibc)
    private static let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    #else
    private static let resource = RLIMIT_NOFILE
    #endif
}

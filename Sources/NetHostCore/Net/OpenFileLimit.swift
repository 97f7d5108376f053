#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The process's limit on open files (`ulimit -n`, systemd's `LimitNOFILE`): what
/// `accept` runs into (EMFILE), and what budgets of connections are measured against.
public enum OpenFileLimit {
    /// The soft limit, if it has one (nil when unlimited or unreadable). Read afresh
    /// each time: the process may raise it.
    public static var soft: UInt64? {
        var limit = rlimit()
        #if canImport(Glibc)
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        #else
        let resource = RLIMIT_NOFILE
        #endif
        // rlim_t.max is RLIM_INFINITY, which does not import.
        guard getrlimit(resource, &limit) == 0, limit.rlim_cur != rlim_t.max else { return nil }
        return UInt64(limit.rlim_cur)
    }
}

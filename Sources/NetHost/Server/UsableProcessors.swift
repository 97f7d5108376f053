import Foundation
import NIOCore

/// How many event loops are worth running: the processors this process may run on.
///
/// NIO's `System.coreCount` counts the machine's (or the cgroup's) processors, not the
/// process's CPU affinity. A server started with `taskset -c 0` would then run two loops
/// on one processor, and every connection accepted on one loop and served on the other
/// would cost a thread wake-up and context switches.
public enum UsableProcessors {
    public static var count: Int {
        guard let allowed = affinityCount(), allowed > 0 else { return System.coreCount }
        return min(allowed, System.coreCount)
    }

    /// The processors in this process's affinity mask, from `Cpus_allowed` in
    /// /proc/self/status (Glibc's Swift overlay does not expose `sched_getaffinity`).
    static func affinityCount(status path: String = "/proc/self/status") -> Int? {
        guard let status = try? String(contentsOfFile: path, encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed:") })
        else { return nil }
        let mask = line.dropFirst("Cpus_allowed:".count).filter { $0 != "," && $0 != " " && $0 != "\t" }
        var count = 0
        for digit in mask {
            guard let nibble = digit.hexDigitValue else { return nil }
            count += nibble.nonzeroBitCount
        }
        return count
    }
}

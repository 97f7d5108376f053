import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Prometheus

/// How late each event loop runs what it was asked to: a task scheduled for a moment
/// runs after whatever the loop was doing then, so how far past that moment it starts
/// is how long a connection on that loop would have waited. Checked once a second on
/// each loop; the last lag and the longest since start are gauges labelled `loop`.
final class EventLoopLag: Sendable {
    static let interval = TimeAmount.seconds(1)
    /// Each loop's pending check, by loop; nil once stopped.
    private let tasks: NIOLockedValueBox<[Int: Scheduled<Void>]?>

    init(group: MultiThreadedEventLoopGroup, exposition: MetricsExposition) {
        tasks = NIOLockedValueBox([:])
        for (index, loop) in group.makeIterator().enumerated() {
            let labels = [("loop", String(index))]
            let check = Check(
                last: exposition.gauge(name: "nethost_event_loop_lag_seconds", labels: labels),
                longest: exposition.gauge(name: "nethost_event_loop_lag_max_seconds", labels: labels)
            )
            schedule(check, on: loop, index: index)
        }
    }

    /// One loop's gauges and the longest lag seen; used on that loop only.
    private struct Check: Sendable {
        let last: Gauge
        let longest: Gauge
    }

    /// A one-shot task per check rather than a repeated task: the lag is measured from
    /// the deadline this task was given, and the next deadline is set from when it ran.
    private func schedule(_ check: Check, on loop: any EventLoop, index: Int, longest: TimeAmount = .zero) {
        let deadline = NIODeadline.now() + Self.interval
        let scheduled = loop.scheduleTask(deadline: deadline) { [weak self] in
            let lag = max(.zero, NIODeadline.now() - deadline)
            let longest = max(longest, lag)
            check.last.set(Self.seconds(lag))
            check.longest.set(Self.seconds(longest))
            self?.schedule(check, on: loop, index: index, longest: longest)
        }
        let kept = tasks.withLockedValue { tasks -> Bool in
            guard tasks != nil else { return false }
            tasks?[index] = scheduled
            return true
        }
        if !kept { scheduled.cancel() }
    }

    func stop() {
        let pending = tasks.withLockedValue { tasks -> [Scheduled<Void>] in
            defer { tasks = nil }
            return tasks.map { Array($0.values) } ?? []
        }
        for task in pending { task.cancel() }
    }

    private static func seconds(_ amount: TimeAmount) -> Double {
        Double(amount.nanoseconds) / 1_000_000_000
    }
}

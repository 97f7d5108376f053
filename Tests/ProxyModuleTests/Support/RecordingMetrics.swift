import CoreMetrics
import NIOConcurrencyHelpers

/// A swift-metrics backend that keeps each counter's total by label and dimensions.
///
/// swift-metrics takes one backend per process, once and for good, and a counter is
/// bound to the backend in force when it is made. So this one is bootstrapped the
/// first time a test asks for `shared`, in this test process only (no other test
/// here bootstraps one), and from then on every counter made in the process counts
/// into it. Other tests' counters are merely added up; a test reads only the
/// counters whose dimensions it alone can have made (a port of its own).
final class RecordingMetrics: MetricsFactory {
    static let shared: RecordingMetrics = {
        let metrics = RecordingMetrics()
        MetricsSystem.bootstrap(metrics)
        return metrics
    }()

    private let totals = NIOLockedValueBox<[String: Int64]>([:])

    private static func key(_ label: String, _ dimensions: [(String, String)]) -> String {
        label + "{" + dimensions.sorted { $0.0 < $1.0 }.map { "\($0.0)=\($0.1)" }.joined(separator: ",") + "}"
    }

    /// The counter's total so far (0 if it was never made).
    func total(_ label: String, _ dimensions: [(String, String)]) -> Int64 {
        totals.withLockedValue { $0[Self.key(label, dimensions)] ?? 0 }
    }

    private final class Counter: CounterHandler, Sendable {
        let key: String
        let totals: NIOLockedValueBox<[String: Int64]>
        init(key: String, totals: NIOLockedValueBox<[String: Int64]>) { self.key = key; self.totals = totals }
        func increment(by amount: Int64) { totals.withLockedValue { $0[key, default: 0] += amount } }
        func reset() { totals.withLockedValue { $0[key] = 0 } }
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> CounterHandler {
        Counter(key: Self.key(label, dimensions), totals: totals)
    }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> RecorderHandler {
        NOOPMetricsHandler.instance
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> TimerHandler { NOOPMetricsHandler.instance }
    func destroyCounter(_ handler: CounterHandler) {}
    func destroyRecorder(_ handler: RecorderHandler) {}
    func destroyTimer(_ handler: TimerHandler) {}
}

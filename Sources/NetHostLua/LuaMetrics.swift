import CoreMetrics

/// The metrics Lua modules make with `module:metric` and `module:measure`, as
/// swift-metrics metrics: a Prosody counter is a `FloatingPointCounter` (Prosody's
/// counters take any number), a gauge a `Gauge`, a histogram or a summary an
/// aggregating `Recorder`. Whichever backend the process runs with exports them.
/// Used on the Lua loop only, as the Lua state is.
final class LuaMetrics {
    enum Kind: String {
        case counter, gauge, histogram, summary
    }

    private enum Metric {
        case counter(FloatingPointCounter)
        /// Prosody's gauges can be added to: the value is kept here, as swift-metrics only records.
        case gauge(Gauge, value: Double)
        case recorder(Recorder)
    }

    private let factory: any MetricsFactory
    private var metrics: [Metric] = []
    private var byKey: [String: Int] = [:]

    init(factory: any MetricsFactory) {
        self.factory = factory
    }

    /// The handle of the metric named `name` with these labels, made on first use.
    /// The name becomes a metric label as exporters accept it (`prosody_mod_chat/lines`
    /// is `prosody_mod_chat_lines`).
    func handle(kind: Kind, name: String, labels: [(String, String)]) -> Int {
        let label = Self.metricName(name)
        let key = kind.rawValue + " " + label + "{" + labels.map { "\($0.0)=\($0.1)" }.joined(separator: ",") + "}"
        if let id = byKey[key] { return id }
        let metric: Metric = switch kind {
        case .counter: .counter(FloatingPointCounter(label: label, dimensions: labels, factory: factory))
        case .gauge: .gauge(Gauge(label: label, dimensions: labels, factory: factory), value: 0)
        case .histogram, .summary: .recorder(Recorder(label: label, dimensions: labels, aggregate: true, factory: factory))
        }
        metrics.append(metric)
        byKey[key] = metrics.count - 1
        return metrics.count - 1
    }

    /// Applies Prosody's `add`, `set` or `sample` to a metric; what does not apply to
    /// its kind (setting a counter, sampling a gauge) is ignored, as a no-op does.
    func update(_ id: Int, operation: String, value: Double) {
        guard metrics.indices.contains(id), value.isFinite else { return }
        switch (metrics[id], operation) {
        case (.counter(let counter), "add"):
            if value > 0 { counter.increment(by: value) }
        case (.gauge(let gauge, let current), "add"):
            metrics[id] = .gauge(gauge, value: current + value)
            gauge.record(current + value)
        case (.gauge(let gauge, _), "set"):
            metrics[id] = .gauge(gauge, value: value)
            gauge.record(value)
        case (.recorder(let recorder), "sample"):
            recorder.record(value)
        default:
            break
        }
    }

    static func metricName(_ name: String) -> String {
        String(name.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == ":") ? $0 : "_" })
    }
}

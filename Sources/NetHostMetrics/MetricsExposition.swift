import CoreMetrics
import Logging
import Prometheus
import Synchronization

/// The swift-metrics backend of the `nethost` binary: every metric made through
/// swift-metrics (net_proxy's counters, Lua modules' `module:metric`) becomes a
/// swift-prometheus metric in one `PrometheusCollectorRegistry`, and `page()` writes
/// that registry in Prometheus' text format.
///
/// Why not swift-prometheus' own `PrometheusMetricsFactory`: it gives every metric an
/// empty help text and keeps a counter's name as it is, and `promtool check metrics`
/// refuses both (no HELP line; a counter without `_total`). It also stops the process
/// (`fatalError`) when one name is made as two kinds, or with and without labels; a
/// Lua module can do that by mistake, so here the second such metric is dropped
/// (logged once) instead.
///
/// Values kept elsewhere (the host's atomics, each loop's connection lists) are read
/// by scrape hooks, run just before each page is written, rather than pushed on the
/// connection path.
public final class MetricsExposition: MetricsFactory, Sendable {
    public let registry: PrometheusCollectorRegistry
    private let logger: Logger

    /// What a metric name was first made as: the registry's families are fixed by that.
    private struct Family: Equatable {
        enum Kind { case counter, gauge, valueHistogram, durationHistogram }
        let kind: Kind
        let labelled: Bool
    }

    private let families = Mutex<[String: Family]>([:])
    /// The names whose clash was logged already: one warning per name, not one per use.
    private let warned = Mutex<Set<String>>([])
    private let hooks = Mutex<[@Sendable () async -> Void]>([])

    /// Buckets for aggregating recorders (Prosody histograms and summaries, sizes):
    /// powers of ten and their halves, from 1 up, as no unit is known.
    static let valueBuckets: [Double] = [1, 5, 10, 50, 100, 500, 1000, 5000, 10000, 50000, 100_000, 1_000_000]
    /// Buckets for timers: from a tenth of a millisecond (a header parsed at once) to
    /// ten seconds (past every default timeout).
    static let durationBuckets: [Duration] = [
        .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .microseconds(2_500),
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
        .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2_500), .seconds(5), .seconds(10),
    ]

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(), logger: Logger) {
        self.registry = registry
        self.logger = logger
    }

    /// The exposition the process bootstrapped swift-metrics with, if it did (the
    /// `nethost` binary does; `nethost check` and library tests do not).
    public static var bootstrapped: MetricsExposition? {
        MetricsSystem.factory as? MetricsExposition
    }

    /// Runs `hook` before each page is written, to bring values kept elsewhere up to date.
    public func beforeEachScrape(_ hook: @escaping @Sendable () async -> Void) {
        hooks.withLock { $0.append(hook) }
    }

    /// The page: every metric in Prometheus' text format, after the scrape hooks ran.
    public func page() async -> [UInt8] {
        for hook in hooks.withLock({ $0 }) {
            await hook()
        }
        counter(name: "nethost_metrics_scrapes_total").increment()
        return registry.emitToBuffer()
    }

    // MARK: - Metrics made by name (the host's own)

    /// A counter of this name and labels; a counter's name ends in `_total` (added if missing).
    public func counter(name: String, labels: [(String, String)] = []) -> Prometheus.Counter {
        let name = Self.counterName(Self.sanitized(name))
        return admit(name, Family(kind: .counter, labelled: !labels.isEmpty)) {
            registry.makeCounter(descriptor: Self.descriptor(name), labels: labels)
        } ?? registry.makeCounter(descriptor: Self.droppedCounter, labels: [("name", name)])
    }

    public func gauge(name: String, labels: [(String, String)] = []) -> Prometheus.Gauge {
        let name = Self.sanitized(name)
        return admit(name, Family(kind: .gauge, labelled: !labels.isEmpty)) {
            registry.makeGauge(descriptor: Self.descriptor(name), labels: labels)
        } ?? registry.makeGauge(descriptor: Self.droppedGauge, labels: [("name", name)])
    }

    public func durationHistogram(name: String, labels: [(String, String)] = []) -> DurationHistogram? {
        let name = Self.sanitized(name)
        return admit(name, Family(kind: .durationHistogram, labelled: !labels.isEmpty)) {
            registry.makeDurationHistogram(descriptor: Self.descriptor(name), labels: labels, buckets: Self.durationBuckets)
        }
    }

    /// Where a metric whose name clashed goes instead, labelled with its name, so that
    /// what its owner counts does not vanish silently.
    static var droppedCounter: MetricNameDescriptor { MetricNameDescriptor(
        metricName: "nethost_dropped_metric", unitName: "total",
        helpText: "Counters whose name was already used for another kind, or with and without labels, by name."
    ) }
    static var droppedGauge: MetricNameDescriptor { MetricNameDescriptor(
        metricName: "nethost_dropped_metric", unitName: "",
        helpText: "Gauges whose name was already used for another kind, or with and without labels, by name."
    ) }

    /// The name in full (no namespace or unit parts) with its help text.
    static func descriptor(_ name: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: MetricDescriptions.help(for: name))
    }

    /// Makes the metric when `name` is new, or was made the same way before; nil (and
    /// a warning, once per name) when it clashes with what the name already is.
    private func admit<Metric>(_ name: String, _ family: Family, make: () -> Metric) -> Metric? {
        let existing = families.withLock { families -> Family? in
            if let existing = families[name] { return existing }
            families[name] = family
            return nil
        }
        if let existing, existing != family {
            if warned.withLock({ $0.insert(name).inserted }) {
                logger.warning(
                    "metric \(name) dropped: the name is already a \(existing.kind)\(existing.labelled ? " with labels" : "")",
                    metadata: ["metric": "\(name)"]
                )
            }
            return nil
        }
        return make()
    }

    /// Prometheus names: letters, digits, `_` and `:`, not starting with a digit.
    static func sanitized(_ name: String) -> String {
        var result = String(name.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == ":") ? $0 : "_" })
        if result.first?.isNumber ?? true { result = "_" + result }
        return result
    }

    static func counterName(_ name: String) -> String {
        name.hasSuffix("_total") ? name : name + "_total"
    }

    // MARK: - MetricsFactory

    public func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        counter(name: label, labels: dimensions)
    }

    public func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        counter(name: label, labels: dimensions)
    }

    public func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        guard aggregate else { return gauge(name: label, labels: dimensions) }
        let name = Self.sanitized(label)
        return admit(name, Family(kind: .valueHistogram, labelled: !dimensions.isEmpty)) {
            registry.makeValueHistogram(descriptor: Self.descriptor(name), labels: dimensions, buckets: Self.valueBuckets)
        } ?? NOOPMetricsHandler.instance
    }

    public func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        gauge(name: label, labels: dimensions)
    }

    public func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        durationHistogram(name: label, labels: dimensions) ?? NOOPMetricsHandler.instance
    }

    // A metric made through swift-metrics stays in the page once made: a scraper
    // tells a series that vanished from one that reset only if it stays.
    public func destroyCounter(_ handler: any CounterHandler) {}
    public func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {}
    public func destroyRecorder(_ handler: any RecorderHandler) {}
    public func destroyMeter(_ handler: any MeterHandler) {}
    public func destroyTimer(_ handler: any TimerHandler) {}
}

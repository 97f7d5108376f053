import CoreMetrics
import Logging
import Prometheus
import Testing

@testable import NetHostMetrics

/// The swift-metrics backend, given to each metric explicitly (`factory:`): this test
/// process bootstraps no metrics system, and these tests need none.
@Suite("metrics: the exposition")
struct MetricsExpositionTests {
    static func page(_ exposition: MetricsExposition) async -> String {
        String(decoding: await exposition.page(), as: UTF8.self)
    }

    @Test("every family has HELP and TYPE lines; a counter's name ends in _total")
    func helpAndTotal() async {
        let exposition = MetricsExposition(logger: Logger(label: "test"))
        CoreMetrics.Counter(label: "prosody_mod_chat_lines", dimensions: [("host", "a")], factory: exposition).increment(by: 2)
        CoreMetrics.Counter(label: "nethost_proxy_connections_total", dimensions: [("port", "1")], factory: exposition).increment()
        Gauge(label: "prosody_mod_chat_users", factory: exposition).record(5)
        Recorder(label: "prosody_mod_chat_sizes", dimensions: [], aggregate: true, factory: exposition).record(7)
        Timer(label: "nethost_proxy_header_seconds", dimensions: [("port", "1")], factory: exposition).recordMilliseconds(3)
        let page = await Self.page(exposition)
        #expect(page.contains("prosody_mod_chat_lines_total{host=\"a\"} 2\n"), "\(page)")
        #expect(page.contains("nethost_proxy_connections_total{port=\"1\"} 1\n"), "\(page)")
        #expect(!page.contains("_total_total"))
        #expect(page.contains("prosody_mod_chat_users 5"), "\(page)")
        #expect(page.contains("prosody_mod_chat_sizes_count 1"), "\(page)")
        #expect(page.contains("nethost_proxy_header_seconds_count{port=\"1\"} 1"), "\(page)")
        let lines = page.split(separator: "\n")
        let typed = lines.filter { $0.hasPrefix("# TYPE ") }.map { $0.split(separator: " ")[2] }
        let helped = Set(lines.filter { $0.hasPrefix("# HELP ") }.map { $0.split(separator: " ")[2] })
        #expect(!typed.isEmpty)
        for name in typed { #expect(helped.contains(name), "\(name) has no HELP line") }
    }

    @Test("a name made again as another kind, or without its labels, is dropped instead of stopping the process")
    func clash() async {
        let exposition = MetricsExposition(logger: Logger(label: "test"))
        CoreMetrics.Counter(label: "prosody_mod_x_n", factory: exposition).increment()
        Gauge(label: "prosody_mod_x_n_total", factory: exposition).record(1)
        Gauge(label: "prosody_mod_x_g", dimensions: [("a", "1")], factory: exposition).record(1)
        Gauge(label: "prosody_mod_x_g", factory: exposition).record(2)
        let page = await Self.page(exposition)
        #expect(page.contains("prosody_mod_x_n_total 1\n"), "\(page)")
        #expect(page.contains("nethost_dropped_metric{name=\"prosody_mod_x_n_total\"} 1"), "\(page)")
        #expect(page.contains("nethost_dropped_metric{name=\"prosody_mod_x_g\"} 2"), "\(page)")
        #expect(page.contains("prosody_mod_x_g{a=\"1\"} 1"), "\(page)")
    }

    @Test("scrape hooks run before each page, and the page counts itself")
    func hooks() async {
        let exposition = MetricsExposition(logger: Logger(label: "test"))
        let gauge = exposition.gauge(name: "nethost_open_fds")
        let mirrors = CounterMirrors(exposition: exposition)
        let source = Source()
        exposition.beforeEachScrape {
            gauge.set(Int64(await source.next()))
            mirrors.update("nethost_idle_shed_total", to: await source.value)
        }
        #expect(await Self.page(exposition).contains("nethost_open_fds 1"))
        let second = await Self.page(exposition)
        #expect(second.contains("nethost_open_fds 2"))
        #expect(second.contains("nethost_idle_shed_total 2\n"), "\(second)")
        #expect(second.contains("nethost_metrics_scrapes_total 2\n"), "\(second)")
    }

    @Test("a mirrored counter follows its count and never goes back")
    func mirrors() async {
        let exposition = MetricsExposition(logger: Logger(label: "test"))
        let mirrors = CounterMirrors(exposition: exposition)
        mirrors.update("nethost_idle_shed_total", to: 5)
        mirrors.update("nethost_idle_shed_total", to: 3)
        mirrors.update("nethost_idle_shed_total", to: 7)
        #expect(exposition.registry.emitToString().contains("nethost_idle_shed_total 7\n"))
    }

    @Test("histogram buckets rise, each once (Prometheus reads le as a cumulative, ordered list)")
    func buckets() {
        #expect(MetricsExposition.durationBuckets == MetricsExposition.durationBuckets.sorted())
        #expect(Set(MetricsExposition.durationBuckets).count == MetricsExposition.durationBuckets.count)
        #expect(MetricsExposition.valueBuckets == MetricsExposition.valueBuckets.sorted())
        #expect(Set(MetricsExposition.valueBuckets).count == MetricsExposition.valueBuckets.count)
    }

    @Test("Prometheus names: other characters become _, a leading digit gets one before it",
          arguments: [("a.b-c", "a_b_c"), ("9lives", "_9lives"), ("ok_name:x", "ok_name:x"), ("", "_")])
    func names(raw: String, sanitized: String) {
        #expect(MetricsExposition.sanitized(raw) == sanitized)
    }

    actor Source {
        var value = 0
        func next() -> Int {
            value += 1
            return value
        }
    }
}

import Foundation
import MetricsTestKit
import NIOCore
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostLua

/// Prosody 0.12's metrics API for modules, `module:metric` and `module:measure`,
/// fed into swift-metrics: what a module counts reaches the process's metrics
/// backend (here a test one), named and labelled as Prosody names them.
@Suite("Module metrics: module:metric and module:measure")
struct ModuleMetricsTests {
    static func harness(_ source: String, host: String? = nil, metrics: TestMetrics) throws -> ModuleHarness {
        var hosts: [String: [String: ConfigValue]] = [:]
        var global: [String: ConfigValue] = ["modules_enabled": .strings("probe")]
        if let host {
            hosts[host] = ["modules_enabled": .strings("probe")]
            global = [:]
        }
        return try ModuleHarness(
            modules: ["probe": source], optionSource: FixedOptions(global: global, hosts: hosts), metrics: metrics
        )
    }

    @Test("module:metric families: counters, gauges and histograms with labels, as swift-metrics counters, gauges and recorders")
    func metricFamilies() throws {
        let metrics = TestMetrics()
        let harness = try Self.harness("""
            local lines = module:metric("counter", "lines", "", "lines relayed", { "direction" })
            lines:with_labels("in"):add(3)
            lines:with_labels("in"):add(2)
            lines:with_labels("out"):add(1)
            local rooms = module:metric("gauge", "rooms", "", "open rooms", {}):with_labels()
            rooms:set(4)
            rooms:add(-1)
            local sizes = module:metric("histogram", "line_size", "bytes", "line sizes", {}):with_labels()
            sizes:sample(10)
            sizes:sample(30)
            local ok, err = pcall(function () return lines:with_labels() end)
            trace("wrong label count: " .. tostring(ok) .. " " .. tostring(err):gsub("^.-:%d+: ", ""))
            """, metrics: metrics)
        #expect(harness.traced == ["wrong label count: false number of labels passed to with_labels does not match number of label keys"])
        #expect(try metrics.expectCounter("prosody_mod_probe_lines", [("direction", "in")]).totalValue == 5)
        #expect(try metrics.expectCounter("prosody_mod_probe_lines", [("direction", "out")]).totalValue == 1)
        #expect(try metrics.expectGauge("prosody_mod_probe_rooms").lastValue == 3)
        #expect(try metrics.expectRecorder("prosody_mod_probe_line_size").values == [10, 30])
    }

    @Test("on a host, a metric has the host label first, as Prosody scopes it")
    func hostScoped() throws {
        let metrics = TestMetrics()
        _ = try Self.harness("""
            module:metric("counter", "hits", "", "hits", { "kind" }):with_labels("a"):add(1)
            module:measure("connections", "rate")()
            """, host: "example.com", metrics: metrics)
        #expect(try metrics.expectCounter("prosody_mod_probe_hits", [("host", "example.com"), ("kind", "a")]).totalValue == 1)
        #expect(try metrics.expectCounter("prosody_mod_probe_connections", [("host", "example.com")]).totalValue == 1)
    }

    @Test("module:measure's kinds: amount, counter, rate, sizes, distribution, times (on the loop's clock)")
    func measure() throws {
        let metrics = TestMetrics()
        let harness = try Self.harness("""
            local amount = module:measure("queue", "amount", { initial = 2 })
            local counter = module:measure("bytes", "counter")
            local rate = module:measure("accepted", "rate")
            local sizes = module:measure("stanza_size", "sizes")
            local distribution = module:measure("delay", "distribution")
            local times = module:measure("handling", "times")
            amount(7)
            counter(100); counter(50)
            rate(); rate(); rate()
            sizes(512)
            distribution(0.25)
            local done
            module:hook("start-timing", function () done = times() end)
            module:hook("stop-timing", function () done() end)
            local ok, err = pcall(module.measure, module, "x", "no-such-kind")
            trace(tostring(ok) .. " " .. tostring(err):gsub("^.-:%d+: ", ""))
            """, metrics: metrics)
        #expect(harness.traced == ["false unknown legacy metric type no-such-kind"])
        harness.manager.runtime.fireEvent("start-timing", host: "*")
        harness.advance(by: .milliseconds(1500))
        harness.manager.runtime.fireEvent("stop-timing", host: "*")

        #expect(try metrics.expectGauge("prosody_mod_probe_queue").values == [2, 7])
        #expect(try metrics.expectCounter("prosody_mod_probe_bytes").totalValue == 150)
        #expect(try metrics.expectCounter("prosody_mod_probe_accepted").totalValue == 3)
        #expect(try metrics.expectRecorder("prosody_mod_probe_stanza_size").values == [512])
        #expect(try metrics.expectRecorder("prosody_mod_probe_delay").values == [0.25])
        #expect(try metrics.expectRecorder("prosody_mod_probe_handling").values == [1.5])
    }

    @Test("core.statsmanager, required directly: measure and metric make the same swift-metrics metrics")
    func statsmanager() throws {
        let metrics = TestMetrics()
        _ = try Self.harness("""
            local stats = require "core.statsmanager"
            stats.measure("rate", "probe_events", nil, "kind", "a")()
            stats.metric("gauge", "probe_level", "", "level", { "zone" }):with_labels("z1"):set(9)
            """, metrics: metrics)
        #expect(try metrics.expectCounter("prosody_probe_events", [("kind", "a")]).totalValue == 1)
        #expect(try metrics.expectGauge("probe_level", [("zone", "z1")]).lastValue == 9)
    }
}

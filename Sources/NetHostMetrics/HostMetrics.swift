import Logging
import NetHost
import NIOConcurrencyHelpers
import NIOCore
import Prometheus
import Synchronization

/// What the host itself reports on the metrics page. Nothing here runs on the
/// connection path: the counts kept elsewhere (the host's atomics, each loop's
/// connection list, the open files) are read just before each page is written (a
/// scrape hook), and the event-loop lag is one timer per loop, once a second.
public final class HostMetrics: Sendable {
    private let exposition: MetricsExposition
    private let lag: EventLoopLag
    private let reloadsApplied: Prometheus.Counter
    private let reloadsRefused: Prometheus.Counter

    /// Attaches to `server`: its counters join `exposition`'s page, and the lag of
    /// each of its loops is measured until `stop()`.
    public init(server: NetHostServer, exposition: MetricsExposition) {
        self.exposition = exposition
        Self.recordBuildInfo(in: exposition)
        reloadsApplied = exposition.counter(name: "nethost_reloads_total", labels: [("result", "applied")])
        reloadsRefused = exposition.counter(name: "nethost_reloads_total", labels: [("result", "refused")])
        lag = EventLoopLag(group: server.group, exposition: exposition)
        let mirrors = CounterMirrors(exposition: exposition)
        let openFiles = exposition.gauge(name: "nethost_open_fds")
        let maxFiles = exposition.gauge(name: "nethost_max_fds")
        let luaMemory = exposition.gauge(name: "nethost_lua_memory_bytes")
        exposition.beforeEachScrape { [weak server] in
            guard let server else { return }
            let counters = server.counters
            mirrors.update("nethost_tls_handshake_timeouts_total", to: counters.tlsHandshakeTimeouts)
            mirrors.update("nethost_tls_handshakes_refused_total", to: counters.tlsHandshakesRefused)
            mirrors.update("nethost_send_buffer_total_shed_total", to: counters.sendBufferTotalShed)
            mirrors.update("nethost_idle_shed_total", to: counters.idleShed)
            mirrors.update("nethost_log_lines_dropped_total", to: counters.logLinesDropped)
            openFiles.set(Int64(DescriptorLimit.inUse))
            if let limit = DescriptorLimit.current { maxFiles.set(Int64(limit)) }
            if let bytes = await server.luaMemoryInUse() { luaMemory.set(Int64(bytes)) }
            for count in await server.tracker.connectionCounts() {
                let labels = [("service", count.service), ("port", String(count.port))]
                mirrors.update("nethost_connections_opened_total", labels: labels, to: count.opened)
                mirrors.update("nethost_connections_closed_total", labels: labels, to: count.closed)
                exposition.gauge(name: "nethost_connections_open", labels: labels).set(Int64(count.open))
            }
            for (service, bytes) in await server.tracker.byteCounts() {
                mirrors.update("nethost_service_received_bytes_total", labels: [("service", service)], to: bytes.received)
                mirrors.update("nethost_service_written_bytes_total", labels: [("service", service)], to: bytes.written)
            }
        }
    }

    /// `nethost_build_info{version="..."} 1`, the usual way to put a version on a dashboard.
    static func recordBuildInfo(in exposition: MetricsExposition) {
        exposition.gauge(name: "nethost_build_info", labels: [("version", NetHostVersion.current)]).set(Int64(1))
    }

    /// A config reload (SIGHUP) was applied, or refused as a whole.
    public func reloaded(applied: Bool) {
        (applied ? reloadsApplied : reloadsRefused).increment()
    }

    /// Stops measuring the loops' lag; before the group shuts down.
    public func stop() {
        lag.stop()
    }
}

/// Prometheus counters that follow counts kept elsewhere: each scrape adds what the
/// count grew by since the last, so the counter never goes back (a Prometheus counter
/// only goes up) and starts where the count was.
final class CounterMirrors: Sendable {
    private struct Key: Hashable {
        let name: String
        let labels: [String]
    }

    private let exposition: MetricsExposition
    private let mirrored = Mutex<[Key: (counter: Prometheus.Counter, value: Int)]>([:])

    init(exposition: MetricsExposition) {
        self.exposition = exposition
    }

    func update(_ name: String, labels: [(String, String)] = [], to value: Int) {
        let key = Key(name: name, labels: labels.flatMap { [$0.0, $0.1] })
        // Under the lock: two scrapes at once must not both add the same growth.
        mirrored.withLock { mirrored in
            let entry = mirrored[key] ?? (exposition.counter(name: name, labels: labels), 0)
            if value > entry.value { entry.counter.increment(by: Int64(value - entry.value)) }
            mirrored[key] = (entry.counter, max(value, entry.value))
        }
    }
}

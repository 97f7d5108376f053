// NetHostMetrics: the process's metrics in Prometheus' text format (0.0.4), served over
// HTTP by the native module `metrics` (`metrics_ports`, loopback by default).
//
// - `MetricsExposition` is the swift-metrics backend the `nethost` binary bootstraps: it
//   makes swift-prometheus metrics with help text and Prometheus' names, and runs the
//   scrape hooks that read the host's counters just before each page is written.
// - `HostMetrics` is what the host itself reports (connections per service, the
//   counters SIGUSR1 logs, open files, event-loop lag, reloads, build info).
// - `MetricsModule` is the HTTP service; `MetricsHTTPHandler` its one handler.
//
// Library code never bootstraps swift-metrics: only the binary does.
@_exported import Prometheus

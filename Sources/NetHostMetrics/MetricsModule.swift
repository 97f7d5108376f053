import Logging
import NetHost
import NIOCore
import NIOHTTP1
import Synchronization

/// Native module `metrics`: serves the process's metrics in Prometheus' text format
/// at `GET /metrics`, on a port of its own. Its service is `metrics`, so the host's
/// usual options place it: `metrics_ports` (default 5280, the port Prosody's
/// mod_http_openmetrics answers on) and `metrics_interfaces`; it is private, so it
/// listens on loopback (`local_interfaces`) unless `metrics_interfaces` says otherwise.
///
/// It serves what the process's swift-metrics backend holds when that is a
/// `MetricsExposition` (the `nethost` binary bootstraps one); otherwise (`nethost
/// check`, a program that bootstrapped another backend) a page with only the build
/// information, and a warning says why.
public final class MetricsModule: NativeModule {
    public static let name = "metrics"
    public static let defaultPort = 5280
    /// A scraper that keeps its connection open sends a request every scrape interval
    /// (Prometheus: 1 minute by default); one silent for longer than this has gone.
    static let idleTimeout = TimeAmount.minutes(3)

    private let context: ModuleContext
    let exposition: MetricsExposition
    /// Only when the exposition is not the process's backend: said at the first page
    /// served, not at load, as `nethost check` loads the module without serving.
    private let warning: FirstPageWarning?

    public init(context: ModuleContext) throws {
        self.context = context
        if let bootstrapped = MetricsExposition.bootstrapped {
            exposition = bootstrapped
            warning = nil
        } else {
            exposition = MetricsExposition(logger: context.logger)
            warning = FirstPageWarning()
        }
        HostMetrics.recordBuildInfo(in: exposition)
    }

    public func load() throws {
        try context.provide(NetService(
            name: "metrics",
            handling: .pipeline(MetricsPipeline(exposition: exposition, logger: context.logger, warning: warning)),
            module: Self.name,
            defaultPorts: [Self.defaultPort],
            isPrivate: true,
            countsAgainstConnectionLimits: false
        ))
    }
}

/// Each connection to the metrics port: NIO's HTTP/1.1 server stages and the
/// handler that answers (which also closes it once idle).
struct MetricsPipeline: ServicePipeline {
    let exposition: MetricsExposition
    let logger: Logger
    let warning: FirstPageWarning?

    func executor(forPort port: Int, services: ServiceRegistry) -> NetService.Executor { .anyLoop }

    func initialize(channel: any Channel, port: Int, context: PipelineContext) -> EventLoopFuture<Void> {
        let exposition = self.exposition
        if let warning, warning.isFirst() {
            logger.warning(
                "metrics: this process's swift-metrics backend is not NetHost's Prometheus exposition, so the page shows only the build information"
            )
        }
        return channel.eventLoop.makeCompletedFuture {
            try Self.addStages(to: channel.pipeline.syncOperations, logger: logger) { loop in
                // The scrape hooks await other loops' answers, so the page is made in a task.
                loop.makeFutureWithTask { await exposition.page() }
            }
        }
    }

    /// `page` makes the page on the given loop (a test hands a fixed one).
    static func addStages(
        to pipeline: ChannelPipeline.SynchronousOperations, logger: Logger,
        page: @escaping @Sendable (any EventLoop) -> EventLoopFuture<[UInt8]>
    ) throws {
        try pipeline.configureHTTPServerPipeline(withErrorHandling: true)
        try pipeline.addHandler(MetricsHTTPHandler(page: page, idleTimeout: MetricsModule.idleTimeout, logger: logger))
    }
}

/// True once, for the first connection: a warning said once, not per scrape.
final class FirstPageWarning: Sendable {
    private let said = Atomic<Bool>(false)

    func isFirst() -> Bool {
        !said.exchange(true, ordering: .relaxed)
    }
}

import Logging
import NIOConcurrencyHelpers
import NIOCore
import NetHost

/// The native `net_proxy` module: listens on every port of
/// `proxy_port_mappings`, reads the PROXY header of each connection and hands
/// it to the mapped service with the real client's address.
///
/// Its service is named "proxy", so `proxy_ports` and `proxy_interfaces`
/// override its ports and interfaces the way `NAME_ports` does for any service.
public final class NetProxyModule: NativeModule {
    public static let name = "net_proxy"
    public static let declaredOptions = ProxyOptions.all

    private let context: ModuleContext
    private let runtime: ProxyRuntime
    public var configuration: ProxyConfiguration { runtime.configuration }
    public var statistics: ProxyStatistics { runtime.statistics }
    private let events: RepeatedEventLog
    private let summaries = NIOLockedValueBox<RepeatedTask?>(nil)
    /// Its offer to the host of connections to close at max_connections.
    private let sheddingSource = NIOLockedValueBox<LoadShedding.Registration?>(nil)

    public init(context: ModuleContext) throws {
        self.context = context
        let configuration = try ProxyConfiguration { option in context.option(option) }
        self.events = RepeatedEventLog(logger: context.logger)
        self.runtime = ProxyRuntime(
            liveConfiguration: LiveValue(configuration), statistics: ProxyStatistics(), events: events
        )
    }

    public func load() throws {
        for warning in configuration.warnings {
            context.reportProblem(warning)
        }
        try context.provide(service(for: configuration))
        describe(configuration)
        // At max_connections the host closes the oldest connection still waiting
        // for its header (almost always a flood's) before it refuses a new one.
        let pending = runtime.pending
        sheddingSource.withLockedValue { registration in
            registration = context.shedding.add { maxConnections in
                guard let oldest = pending.takeOldest(maxConnections: maxConnections) else { return false }
                oldest.slot.shed(oldest.reason)
                return true
            }
        }
        let events = self.events
        summaries.withLockedValue { task in
            task = context.group.next().scheduleRepeatedTask(initialDelay: Self.summaryInterval, delay: Self.summaryInterval) { _ in
                events.flush()
            }
        }
    }

    private func service(for configuration: ProxyConfiguration) -> NetService {
        NetService(
            name: "proxy",
            handling: .pipeline(ProxyPipeline(runtime: runtime)),
            module: Self.name,
            defaultPorts: configuration.ports
        )
    }

    private func describe(_ configuration: ProxyConfiguration) {
        let mappings = configuration.portMappings.sorted { $0.key < $1.key }
            .map { "\($0.key) -> \($0.value)" }.joined(separator: ", ")
        context.logger.info("""
            PROXY protocol ports: \(mappings.isEmpty ? "none" : mappings); trusted proxies: \(configuration.trustedProxies); \
            waiting for a header: at most \(configuration.maxPendingHeadersPerIP) per address, \(configuration.maxPendingHeaders) in all
            """)
    }

    /// New mappings, trust list, timeout and sizes apply to connections accepted
    /// from now on; the host then opens and closes ports to match the mappings.
    public func prepareReload() throws -> @Sendable () -> Void {
        let context = self.context
        let updated = try ProxyConfiguration { option in context.option(option) }
        return { [self] in
            runtime.liveConfiguration.value = updated
            context.services.replace(service(for: updated))
            for warning in updated.warnings { context.logger.warning("\(warning)") }
            describe(updated)
        }
    }

    /// One line per port (those listening now, and any that counted a
    /// connection before a reload closed it): its connections since start, by
    /// outcome, and its rejected headers by reason.
    public func logStatistics() {
        for port in Set(configuration.ports).union(statistics.countedPorts).sorted() {
            var metadata: Logger.Metadata = ["port": "\(port)"]
            for (key, count) in statistics.summary(port: port) {
                metadata[key] = "\(count)"
            }
            context.logger.info("PROXY connections by outcome since start", metadata: metadata)
        }
    }

    /// How often repeated refusals are summarised in the log.
    static let summaryInterval = TimeAmount.seconds(10)

    public func unload() {
        if let registration = sheddingSource.withLockedValue({ $0 }) { context.shedding.remove(registration) }
        summaries.withLockedValue { $0?.cancel() }
        events.flush()
    }

    /// A mapping to a service that no module provides is reported at start
    /// (and by `nethost check`); its connections are refused with an error log.
    public func allModulesLoaded() {
        for (port, service) in configuration.portMappings.sorted(by: { $0.key < $1.key })
        where context.services.service(named: service) == nil {
            context.reportProblem("proxy_port_mappings maps port \(port) to service '\(service)', which no loaded module provides")
        }
    }
}

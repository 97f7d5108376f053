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

    private let context: ModuleContext
    public let configuration: ProxyConfiguration
    public let statistics = ProxyStatistics()
    private let events: RepeatedEventLog
    private let summaries = NIOLockedValueBox<RepeatedTask?>(nil)

    public init(context: ModuleContext) throws {
        self.context = context
        self.configuration = try ProxyConfiguration { name in context.option(name) }
        self.events = RepeatedEventLog(logger: context.logger)
    }

    public func load() throws {
        for warning in configuration.warnings {
            context.reportProblem(warning)
        }
        try context.provide(NetService(
            name: "proxy",
            handling: .pipeline(ProxyPipeline(runtime: ProxyRuntime(configuration: configuration, statistics: statistics, events: events))),
            module: Self.name,
            defaultPorts: configuration.ports
        ))
        let mappings = configuration.portMappings.sorted { $0.key < $1.key }
            .map { "\($0.key) -> \($0.value)" }.joined(separator: ", ")
        context.logger.info("PROXY protocol ports: \(mappings.isEmpty ? "none" : mappings); trusted proxies: \(configuration.trustedProxies)")
        let events = self.events
        summaries.withLockedValue { task in
            task = context.group.next().scheduleRepeatedTask(initialDelay: Self.summaryInterval, delay: Self.summaryInterval) { _ in
                events.flush()
            }
        }
    }

    /// How often repeated refusals are summarised in the log.
    static let summaryInterval = TimeAmount.seconds(10)

    public func unload() {
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

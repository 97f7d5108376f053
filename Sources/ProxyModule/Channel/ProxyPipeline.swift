import NIOCore
import NetHost

/// How `net_proxy` sets up the connections of its ports: a `ProxyHeaderHandler`
/// first, which later adds the mapped service's stage itself.
struct ProxyPipeline: ServicePipeline {
    let runtime: ProxyRuntime
    var configuration: ProxyConfiguration { runtime.configuration }

    /// Connections for a Lua service are accepted on the Lua loop, so the
    /// hand-over never crosses threads.
    func executor(forPort port: Int, services: ServiceRegistry) -> NetService.Executor {
        guard let name = configuration.portMappings[port],
              case .listener(_, let executor)? = services.service(named: name)?.handling
        else {
            return .anyLoop
        }
        return executor
    }

    func handOverTarget(forPort port: Int) -> String? {
        configuration.portMappings[port]
    }

    func initialize(channel: any Channel, port: Int, context: PipelineContext) -> EventLoopFuture<Void> {
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(
                ProxyHeaderHandler(port: port, runtime: runtime, context: context)
            )
        }
    }
}

import NetHostCore
import NIOCore

/// How an accepted connection gets its pipeline: admitted under
/// `max_connections` first, then set up for the service that owns its port.
enum ConnectionSetup {
    /// The initializer a listening socket runs for each connection it accepts.
    /// `perAddress`: whether the port's peers count against `max_connections_per_ip`
    /// (a service's own port; not a PROXY port, whose peers are the load balancers).
    /// `limiter` nil: the service's connections do not count (an operator's port).
    static func initializer(
        for serviceName: String, port: Int, perAddress: Bool, limiter: ConnectionLimiter?, context: PipelineContext
    ) -> @Sendable (any Channel) -> EventLoopFuture<Void> {
        let serve = serving(serviceName, port: port, context: context)
        guard let limiter else { return serve }
        return admitting(through: limiter, perAddress: perAddress, serve)
    }

    /// Closes a connection past `max_connections` (or `max_connections_per_ip`) before any handler sees it.
    private static func admitting(
        through limiter: ConnectionLimiter,
        perAddress: Bool,
        _ initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>
    ) -> @Sendable (any Channel) -> EventLoopFuture<Void> {
        { channel in
            guard limiter.admit(channel, perAddress: perAddress) else { return channel.eventLoop.makeSucceededVoidFuture() }
            return initializer(channel)
        }
    }

    /// Sets up each accepted connection with the service as the registry holds it
    /// at that moment, so a module reloaded since the port opened serves the new
    /// connections with its new listener.
    private static func serving(
        _ serviceName: String, port: Int, context: PipelineContext
    ) -> @Sendable (any Channel) -> EventLoopFuture<Void> {
        { channel in
            guard let service = context.service(named: serviceName, on: channel.eventLoop) else {
                channel.close(promise: nil)
                return channel.eventLoop.makeSucceededVoidFuture()
            }
            switch service.handling {
            case .listener(let listener, _):
                return channel.eventLoop.makeCompletedFuture {
                    try context.addServiceStages(
                        to: channel.pipeline.syncOperations, service: service, listener: listener, addresses: nil, origin: nil
                    )
                }
            case .pipeline(let pipeline):
                return pipeline.initialize(channel: channel, port: port, context: context)
            }
        }
    }
}

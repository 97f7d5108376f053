import NIOCore

/// How a connection of a per-loop Lua service (`lua_per_loop_services`, `.luaPerLoop`)
/// finds its listener: the one of the Lua state of the loop that accepted it.
extension PipelineContext {
    /// The service `name` as a connection accepted on `loop` should see it: the loop's
    /// own Lua state's, for a per-loop Lua service off the primary Lua loop (read from
    /// that loop's registry, which no other loop touches), else the process-wide one.
    public func service(named name: String, on loop: any EventLoop) -> NetService? {
        if let local = loopLocal.service(named: name, on: loop), case .listener(_, .luaPerLoop) = local.handling {
            return local
        }
        return services.service(named: name)
    }

    /// The listener that serves a connection of `service` on `loop`: for a per-loop Lua
    /// service off the primary Lua loop, the same service as the loop's own Lua state
    /// provides it (found without a lock shared between loops); otherwise `given`.
    /// A listener other than the service's own is kept.
    func listener(
        of service: NetService, given: any ConnectionListener, on loop: any EventLoop
    ) throws -> any ConnectionListener {
        // Already the loop's own (found through `service(named:on:)`, or the primary state's on the Lua loop).
        guard case .listener(let own, .luaPerLoop) = service.handling, own === given, given.homeLoop !== loop else { return given }
        guard let local = loopLocal.service(named: service.name, on: loop)?.listener else {
            let failure = NoLoopState(service: service.name)
            if loopLocal.firstReport(of: "\(ObjectIdentifier(loop)) \(service.name)") {
                logger.error("\(failure); closing its connections on this loop (logged once per loop)", metadata: ["service": "\(service.name)"])
            }
            throw failure
        }
        return local
    }

    /// A per-loop service whose module did not load in the Lua state of the loop that accepted a connection.
    public struct NoLoopState: Error, CustomStringConvertible {
        public let service: String
        public var description: String {
            "service '\(service)' is in lua_per_loop_services, but the Lua state of this event loop does not provide it "
                + "(its module failed to load there: see the log at start or at the last reload)"
        }
    }
}

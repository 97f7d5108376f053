import NetHostConfig
import NetHostCore

/// Native module `agent_check`: answers HAProxy's agent check (`server ...
/// agent-check agent-port N` in haproxy.cfg) on a port of its own, so the load
/// balancer weighs each instance by how full it is and stops sending to one that
/// is leaving or that an operator took out (see `AgentCheckReply` for the lines,
/// `OperatorStateFile` for the operator's side).
///
/// Its service is `agent_check`, private: it listens on `agent_check_ports` (no
/// default: HAProxy has no standard agent port; without it `nethost check` warns
/// that no one can reach the service) on loopback unless `agent_check_interfaces`
/// says otherwise. While it is loaded, a graceful stop keeps the ports open
/// `agent_check_drain_time` seconds, answering `drain`, before they close.
public final class AgentCheckModule: NativeModule {
    public static let name = "agent_check"
    public static let declaredOptions = AgentCheckOptions.all

    private let context: ModuleContext
    private let responder: AgentCheckResponder

    public init(context: ModuleContext) throws {
        self.context = context
        var problems: [String] = []
        let settings = AgentCheckSettings(options: { context.option($0) }, problems: &problems)
        problems.forEach(context.reportProblem)
        responder = AgentCheckResponder(status: context.status, settings: settings, logger: context.logger)
    }

    public func load() throws {
        try context.provide(NetService(
            name: "agent_check",
            handling: .pipeline(AgentCheckPipeline(responder: responder, logger: context.logger)),
            module: Self.name,
            isPrivate: true,
            countsAgainstConnectionLimits: false
        ))
        context.status.leavingNotice = responder.currentSettings.drainTime
    }

    public func prepareReload() throws -> @Sendable () -> Void {
        var problems: [String] = []
        let context = self.context
        let settings = AgentCheckSettings(options: { context.option($0) }, problems: &problems)
        let responder = self.responder
        let found = problems
        return {
            found.forEach(context.reportProblem)
            responder.currentSettings = settings
            context.status.leavingNotice = settings.drainTime
        }
    }

    public func unload() {
        context.status.leavingNotice = .zero
    }
}

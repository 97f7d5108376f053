import NetHostConfig
import NIOCore

/// The options of the `agent_check` module. Its service is named `agent_check`, so
/// `agent_check_ports` and `agent_check_interfaces` are also that service's
/// `NAME_ports` and `NAME_interfaces`, declared here for their help text.
public enum AgentCheckOptions {
    public static let defaultDrainTime = 3.0

    public static let ports = OptionDeclaration(
        "agent_check_ports", .portList, scope: .global,
        help: "the ports HAProxy's agent-check connects to (its agent-port); none by default",
        reload: .applied
    )
    public static let interfaces = OptionDeclaration(
        "agent_check_interfaces", .stringList, default: "local_interfaces (loopback)", scope: .global,
        help: "the addresses the agent-check ports listen on; open them to the load balancers only",
        reload: .applied
    )
    public static let stateFile = OptionDeclaration(
        "agent_check_state_file", .string, scope: .global,
        help: "an absolute path; while the file exists its first word (maint, down, drain) is what the agent reports",
        reload: .applied
    )
    public static let drainTime = OptionDeclaration(
        "agent_check_drain_time", .seconds, default: "\(Int(defaultDrainTime))", scope: .global,
        help: "seconds a graceful stop keeps the ports open while the agent answers drain; set it above HAProxy's agent-inter",
        reload: .applied
    )

    public static let all = [ports, interfaces, stateFile, drainTime]
}

/// The module's options as values, checked.
struct AgentCheckSettings: Sendable, Equatable {
    var stateFile: String?
    var drainTime: TimeAmount = .nanoseconds(Int64(AgentCheckOptions.defaultDrainTime * 1e9))

    /// Reads the options; a value that cannot be used is a problem (said in words)
    /// and its default applies.
    init(options: (OptionDeclaration) -> ConfigValue?, problems: inout [String]) {
        if let value = options(AgentCheckOptions.stateFile) {
            if let path = value.stringValue, path.hasPrefix("/") {
                stateFile = path
            } else {
                problems.append("agent_check_state_file must be an absolute path, not \(value); no state file is read")
            }
        }
        if let value = options(AgentCheckOptions.drainTime) {
            if let seconds = value.numberValue, seconds.isFinite, (0 ... 3600).contains(seconds) {
                drainTime = .nanoseconds(Int64(seconds * 1e9))
            } else {
                problems.append(
                    "agent_check_drain_time must be a number of seconds from 0 to 3600, not \(value); using \(Int(AgentCheckOptions.defaultDrainTime))"
                )
            }
        }
    }

    init(stateFile: String? = nil, drainTime: TimeAmount = .seconds(3)) {
        self.stateFile = stateFile
        self.drainTime = drainTime
    }
}

/// The one line the agent check answers, decided from what the instance knows: its
/// load, whether it is leaving, and what an operator said. Pure: no I/O, no clock,
/// so the whole grammar is tested as a table.
///
/// HAProxy's agent-check protocol (configuration.txt, "agent-check"): the agent
/// writes one ASCII line of words separated by spaces and closes. The words used here:
///
/// | state | line | what HAProxy does |
/// | --- | --- | --- |
/// | serving | `up ready 75%` | operational state UP, administrative state READY (both undo an earlier `down`, `drain` or `maint` of the agent's: only the agent can), weight 75% of the configured one |
/// | leaving, or an operator's `drain` | `drain` | DRAIN: no new connections but persistent ones; those open continue |
/// | an operator's `down` | `down #reason` | operational state DOWN, the reason in its log and stats |
/// | an operator's `maint` | `maint` | MAINT: no new connections, health checks stop (the agent's go on) |
///
/// When several hold, the one that takes the instance furthest out of rotation wins:
/// `maint`, then `down`, then `drain`.
public struct AgentCheckReply: Sendable, Equatable {
    /// What an operator asked for (see `OperatorStateFile`).
    public enum OperatorState: Sendable, Equatable {
        case drain
        /// With an optional reason, shown by HAProxy.
        case down(reason: String?)
        case maint
    }

    public enum State: Sendable, Equatable {
        /// Serving, with this weight in percent of the configured one (0 ... 100).
        case up(weight: Int)
        case drain
        case down(reason: String?)
        case maint
    }

    public let state: State

    public init(state: State) {
        self.state = state
    }

    /// The reply for an instance with `load` (nil: not known, reported as idle),
    /// `leaving` (a graceful stop has begun) and `operatorState` (nil: nothing said).
    public init(load: HostStatus.Load?, leaving: Bool, operatorState: OperatorState?) {
        switch operatorState {
        case .maint?:
            state = .maint
        case .down(let reason)?:
            state = .down(reason: reason)
        case .drain?:
            state = .drain
        case nil:
            state = leaving ? .drain : .up(weight: load.map(Self.weight) ?? 100)
        }
    }

    /// The share of `max_connections` still free, in percent, rounded up: 100 when
    /// idle, falling as the instance fills, at least 1 while a connection is still
    /// admitted (HAProxy shows a weight of 0 as DRAIN), 0 once full.
    public static func weight(_ load: HostStatus.Load) -> Int {
        guard load.maximum > 0 else { return 0 }
        let free = min(max(load.maximum - load.open, 0), load.maximum)
        return (free * 100 + load.maximum - 1) / load.maximum
    }

    /// The line as sent, with its newline.
    public var line: String {
        switch state {
        case .up(let weight): return "up ready \(weight)%\n"
        case .drain: return "drain\n"
        case .down(let reason?): return "down #\(reason)\n"
        case .down(nil): return "down\n"
        case .maint: return "maint\n"
        }
    }

    /// The state in one word, for the log (`up` without its weight, which changes often).
    public var word: String {
        switch state {
        case .up: return "up"
        case .drain: return "drain"
        case .down: return "down"
        case .maint: return "maint"
        }
    }
}

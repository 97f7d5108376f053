import Testing
@testable import NetHost

/// The agent check's reply as a specification: from the instance's load, whether it
/// is leaving and what an operator said, exactly the line HAProxy reads
/// (configuration.txt, "agent-check"; the lines were tried against HAProxy 2.6).
@Suite("Agent check reply")
struct AgentCheckReplyTests {
    typealias Load = HostStatus.Load

    @Test("serving: up ready, with the share of max_connections still free, rounded up", arguments: [
        (Load(open: 0, maximum: 10), "up ready 100%\n"),
        (Load(open: 5, maximum: 10), "up ready 50%\n"),
        (Load(open: 9, maximum: 10), "up ready 10%\n"),
        (Load(open: 1, maximum: 3), "up ready 67%\n"),
        (Load(open: 2, maximum: 3), "up ready 34%\n"),
        // One connection short of full still gets a trickle: 0% would read as DRAIN.
        (Load(open: 99_999, maximum: 100_000), "up ready 1%\n"),
        (Load(open: 10, maximum: 10), "up ready 0%\n"),
        // Past a cap lowered by a reload, connections stay open: still 0, never negative.
        (Load(open: 15, maximum: 10), "up ready 0%\n"),
        (Load(open: 0, maximum: 0), "up ready 0%\n"),
    ])
    func weightFollowsLoad(load: Load, line: String) {
        #expect(AgentCheckReply(load: load, leaving: false, operatorState: nil).line == line)
    }

    @Test("an unknown load (no limiter yet) is reported as idle")
    func unknownLoad() {
        #expect(AgentCheckReply(load: nil, leaving: false, operatorState: nil).line == "up ready 100%\n")
    }

    @Test("leaving: drain, whatever the load")
    func leaving() {
        for load in [nil, Load(open: 0, maximum: 10), Load(open: 10, maximum: 10)] {
            #expect(AgentCheckReply(load: load, leaving: true, operatorState: nil).line == "drain\n")
        }
    }

    @Test("an operator's word is reported as HAProxy spells it", arguments: [
        (AgentCheckReply.OperatorState.drain, "drain\n"),
        (.down(reason: nil), "down\n"),
        // HAProxy takes a reason only after a space: "down#x" is not read as down.
        (.down(reason: "kernel upgrade"), "down #kernel upgrade\n"),
        (.maint, "maint\n"),
    ])
    func operatorStates(state: AgentCheckReply.OperatorState, line: String) {
        #expect(AgentCheckReply(load: Load(open: 0, maximum: 10), leaving: false, operatorState: state).line == line)
    }

    @Test("the state furthest out of rotation wins: maint, then down, then drain")
    func precedence() {
        let load = Load(open: 3, maximum: 10)
        #expect(AgentCheckReply(load: load, leaving: true, operatorState: .maint).state == .maint)
        #expect(AgentCheckReply(load: load, leaving: true, operatorState: .down(reason: "x")).state == .down(reason: "x"))
        #expect(AgentCheckReply(load: load, leaving: true, operatorState: .drain).state == .drain)
        #expect(AgentCheckReply(load: load, leaving: false, operatorState: .drain).state == .drain)
    }

    @Test("every line is one line of printable ASCII ending in a newline")
    func oneLine() {
        let states: [AgentCheckReply.State] = [.up(weight: 0), .up(weight: 100), .drain, .down(reason: nil), .down(reason: "a b"), .maint]
        for state in states {
            let line = AgentCheckReply(state: state).line
            #expect(line.hasSuffix("\n") && line.dropLast().allSatisfy { $0.isASCII && !$0.isNewline }, "\(line.debugDescription)")
        }
    }
}

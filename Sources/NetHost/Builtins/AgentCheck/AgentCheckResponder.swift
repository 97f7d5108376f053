import Logging
import NetHostCore
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// Decides each agent check's reply: the operator's state file is read on NIO's
/// blocking pool (never on an event loop), then the server's load and leaving flag
/// are read as they are at that moment. Says in the log when the reported state
/// changes (`up` to `drain`, ...), not at every check.
final class AgentCheckResponder: Sendable {
    private let status: HostStatus
    private let settings: NIOLockedValueBox<AgentCheckSettings>
    private let stateFile: StateFileReader
    private let logger: Logger
    /// The last state word reported and the state file's last problem, to log changes only.
    private let reported = NIOLockedValueBox<(word: String?, problem: String?)>((nil, nil))

    init(status: HostStatus, settings: AgentCheckSettings, logger: Logger, pool: NIOThreadPool = NIOSingletons.posixBlockingThreadPool) {
        self.status = status
        self.settings = NIOLockedValueBox(settings)
        self.stateFile = StateFileReader(pool: pool)
        self.logger = logger
    }

    var currentSettings: AgentCheckSettings {
        get { settings.withLockedValue { $0 } }
        set { settings.withLockedValue { $0 = newValue } }
    }

    /// The reply for a check connection open now, completed on `loop`.
    func reply(on loop: any EventLoop) -> EventLoopFuture<AgentCheckReply> {
        let reading: EventLoopFuture<OperatorStateFile.Reading>
        if let path = currentSettings.stateFile {
            reading = stateFile.read(path: path, on: loop)
        } else {
            reading = loop.makeSucceededFuture(.none)
        }
        return reading.map { [self] reading in
            let reply = AgentCheckReply(load: ownLoad, leaving: status.isLeaving, operatorState: reading.operatorState)
            noteChange(reply, reading: reading)
            return reply
        }
    }

    /// The load: the connections the limiter counts, which the checks' own are not.
    private var ownLoad: HostStatus.Load? { status.load }

    private func noteChange(_ reply: AgentCheckReply, reading: OperatorStateFile.Reading) {
        let problem: String? = if case .unclear(_, let problem) = reading { problem } else { nil }
        let change = reported.withLockedValue { reported in
            let change = (
                stateChanged: reported.word != reply.word, was: reported.word,
                newProblem: problem != reported.problem ? problem : nil
            )
            reported = (reply.word, problem)
            return change
        }
        if let newProblem = change.newProblem, let path = currentSettings.stateFile {
            logger.warning("agent check: the state file \(path) is taken as maint: \(newProblem)")
        }
        if change.stateChanged {
            let why = reading.operatorState != nil ? "the state file says so" : status.isLeaving ? "leaving" : "serving"
            logger.info("agent check now answers \(reply.line.dropLast()) (\(why); was \(change.was ?? "nothing yet"))")
        }
    }
}

/// Reads the operator's state file on a blocking pool, one read at a time: while a
/// read is under way (a file system that hangs), checks are answered with the last
/// result instead of queueing more reads behind it.
final class StateFileReader: Sendable {
    private let pool: NIOThreadPool
    private let state = NIOLockedValueBox<(last: OperatorStateFile.Reading, reading: Bool)>((.none, false))

    init(pool: NIOThreadPool) {
        self.pool = pool
    }

    func read(path: String, on loop: any EventLoop) -> EventLoopFuture<OperatorStateFile.Reading> {
        let (start, last) = state.withLockedValue { state -> (Bool, OperatorStateFile.Reading) in
            guard !state.reading else { return (false, state.last) }
            state.reading = true
            return (true, state.last)
        }
        guard start else { return loop.makeSucceededFuture(last) }
        return pool.runIfActive(eventLoop: loop) { OperatorStateFile.reading(at: path) }
            .always { [state] result in
                state.withLockedValue { state in
                    state.reading = false
                    if case .success(let reading) = result { state.last = reading }
                }
            }
            .recover { _ in last }
    }
}

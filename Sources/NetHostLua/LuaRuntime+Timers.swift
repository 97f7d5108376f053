import Logging
import LuaBridge
import NetHostCore
import NIOCore

/// Timers for Lua modules (`module:add_timer`): scheduled on the Lua loop's
/// clock, so tests drive them with virtual time; the callback is given the
/// wall-clock time (`wallClock`), as Prosody's timers give it.
extension LuaRuntime {
    /// `host.add_timer(module, host, delay, fn)`: returns the timer's id.
    func addTimer(_ stack: LuaStack) throws -> Int32 {
        let module = try stack.checkString(1, function: "add_timer")
        let host = try stack.checkString(2, function: "add_timer")
        let delay = try Self.timerDelay(try stack.checkNumber(3, function: "add_timer"))
        try stack.checkType(4, .function, function: "add_timer")
        let id = nextTimerID
        nextTimerID += 1
        timers[id] = LuaTimer(callback: stack.makeReference(to: 4), module: module, host: host)
        schedule(timer: id, after: delay)
        stack.push(id)
        return 1
    }

    /// A timer's delay in seconds as the loop's time, or nil for never. NaN is
    /// refused; a negative delay means at once and an infinite one never, as in
    /// Prosody; one longer than a century is shortened to a century, which no
    /// process outlives and which the loop's clock can still add without overflow.
    static func timerDelay(_ seconds: Double) throws -> TimeAmount? {
        guard !seconds.isNaN else {
            throw LuaArgumentError("a timer's delay must be a number of seconds, got NaN")
        }
        guard seconds.isFinite || seconds < 0 else { return nil }
        let century = 100 * 365.25 * 86_400.0
        return .nanoseconds(Int64(min(max(0, seconds), century) * 1_000_000_000))
    }

    /// Arms a timer, replacing when it was due before. [nil: never]
    private func schedule(timer id: Int, after delay: TimeAmount?) {
        timers[id]?.task?.cancel()
        timers[id]?.task = nil
        guard let delay else { return }  // never: the timer stays, so that stop() still finds it
        timers[id]?.task = loop.assumeIsolatedUnsafeUnchecked().scheduleTask(in: delay) { [unowned self] in
            fire(timer: id)
        }
    }

    /// `handle:reschedule(delay)`: a pending timer is next due `delay` from now.
    /// One that has ended stays ended, and within its own callback the value
    /// the callback returns decides, as with Prosody's timers.
    func reschedule(timer id: Int, after delay: TimeAmount?) {
        guard let timer = timers[id], !timer.isFiring else { return }
        schedule(timer: id, after: delay)
    }

    /// Runs a timer's callback; a number it returns re-arms it, anything else ends it.
    private func fire(timer id: Int) {
        // The entry stays while the callback runs, so a `stop()` inside it is seen.
        guard !isClosed, let timer = timers[id] else { return }
        let stack = state.stack
        let base = stack.top
        defer { stack.setTop(base) }
        stack.push(timer.callback)
        stack.push(wallClock())  // the time of day, as Prosody gives it; scheduling uses the loop's clock
        timers[id]?.isFiring = true
        defer { timers[id]?.isFiring = false }
        do {
            try withinBudget { () throws(LuaError) in try stack.call(arguments: 1, results: 1) }
            guard timers[id] != nil else { return }  // stopped by its own callback
            if let again = stack.toNumber(at: -1) {
                schedule(timer: id, after: try Self.timerDelay(again))
                return
            }
        } catch {
            callbackFailures.record(
                module: timer.module, callback: "timer", budgetExceeded: (error as? LuaError).map(LuaRuntime.isBudgetExceeded) ?? false
            )
            var metadata: Logger.Metadata = ["module": "\(timer.module)"]
            if timer.host != "*" { metadata["host"] = "\(timer.host)" }
            logger.error("error in timer callback, the timer is stopped: \(ErrorDescription(error))", metadata: metadata)
        }
        stopTimer(id)
    }

    /// Cancels a timer and gives back its callback's registry slot.
    func stopTimer(_ id: Int) {
        guard let timer = timers.removeValue(forKey: id) else { return }
        timer.task?.cancel()
        release(timer.callback)
    }
}

/// A module's timer: its callback, kept in the registry until the timer ends.
struct LuaTimer {
    let callback: LuaReference
    let module: String
    let host: String
    var task: Scheduled<Void>?
    /// Its callback is running now.
    var isFiring = false
}

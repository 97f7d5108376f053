import NIOConcurrencyHelpers
import NIOCore

/// The waits of a graceful stop (the load balancer's notice, the drain), each up to
/// a time on an event loop's clock, and the one way to cut them all short: a second
/// SIGTERM (`hurry()`). Timed on the loop's clock, not with sleeps, so a test on an
/// `EmbeddedEventLoop` moves through a 30 s drain by advancing time; and a wait ends
/// the moment what it waits for happens, not at the next poll.
public final class HurryableWait: Sendable {
    /// Why a wait ended.
    public enum End: Sendable, Equatable {
        /// Its whole time went by.
        case elapsed
        /// What it waited for happened first (`until` completed).
        case done
        /// `hurry()` was called, before or during the wait.
        case hurried
    }

    private struct State {
        var hurried = false
        var waiting: [EventLoopPromise<End>] = []
    }

    private let state = NIOLockedValueBox(State())

    public init() {}

    /// Whether `hurry()` has been called.
    public var isHurried: Bool { state.withLockedValue(\.hurried) }

    /// Ends every wait now, and every later one as soon as it starts.
    public func hurry() {
        let waiting = state.withLockedValue { state in
            state.hurried = true
            defer { state.waiting.removeAll() }
            return state.waiting
        }
        for promise in waiting { promise.succeed(.hurried) }
    }

    /// Waits up to `time` on `loop`'s clock, or less: until `until` completes
    /// (successfully or not) or `hurry()` is called. The first of the three decides.
    public func wait(upTo time: TimeAmount, on loop: any EventLoop, until: EventLoopFuture<Void>? = nil) -> EventLoopFuture<End> {
        let ended = loop.makePromise(of: End.self)
        let alreadyHurried = state.withLockedValue { state in
            if !state.hurried { state.waiting.append(ended) }
            return state.hurried
        }
        guard !alreadyHurried else {
            ended.succeed(.hurried)
            return ended.futureResult
        }
        // A promise may be completed once; the later completions are dropped.
        let timer = loop.scheduleTask(in: time) { ended.succeed(.elapsed) }
        until?.whenComplete { _ in ended.succeed(.done) }
        ended.futureResult.whenComplete { [state] _ in
            timer.cancel()
            state.withLockedValue { state in
                state.waiting.removeAll { $0.futureResult === ended.futureResult }
            }
        }
        return ended.futureResult
    }

    /// `wait`, from async code; a cancelled task ends it as `hurry()` would, for
    /// this wait only.
    public func wait(upTo time: TimeAmount, on loop: any EventLoop, until: EventLoopFuture<Void>? = nil) async -> End {
        let future: EventLoopFuture<End> = wait(upTo: time, on: loop, until: until)
        let cancelled = loop.makePromise(of: End.self)
        future.cascade(to: cancelled)
        return await withTaskCancellationHandler {
            (try? await cancelled.futureResult.get()) ?? .hurried
        } onCancel: {
            cancelled.succeed(.hurried)
        }
    }
}

import NIOCore
import NIOPosix

/// Something with one deadline on its event loop's `LoopTimers`: a connection's
/// read and send timeouts, a PROXY header's time limit.
public protocol LoopTimerTarget: AnyObject {
    /// Where the target sits in the wheel; only `LoopTimers` reads or writes it.
    var loopTimerSlot: LoopTimerSlot { get set }
    /// The deadline has passed. The target is no longer scheduled; it may schedule again.
    func loopTimerFired()
}

/// A target's place in the wheel (bucket and index), or nowhere.
public struct LoopTimerSlot: Sendable {
    fileprivate var bucket: Int32 = -1
    fileprivate var index: Int32 = -1
    public init() {}
    public var isScheduled: Bool { bucket >= 0 }
}

/// The timeouts of every connection on one event loop, in a hashed timing wheel
/// ticked by a single NIO task.
///
/// NIO keeps scheduled tasks in a heap and cancels one by searching the heap, so a
/// task per connection per timeout costs an allocation to arm and O(open
/// connections) to cancel, and most connections cancel their timeouts. Here
/// arming is an append, cancelling a swap-remove, and an idle connection costs
/// one 24-byte entry. Deadlines are honoured to within one tick (`tick`) late,
/// never early. The ticking task only runs while something is scheduled.
///
/// Confined to its loop: `current(on:)` hands each loop's thread its own wheel.
public final class LoopTimers {
    /// 100 ms: timeouts are seconds long; a tenth of a second late is within what
    /// a peer can notice, and an idle loop with connections wakes 10 times a second.
    public static let tick = TimeAmount.milliseconds(100)
    private static let bucketCount = 512  // 51.2 s per turn of the wheel

    private struct Entry {
        let target: any LoopTimerTarget
        let deadline: NIODeadline
    }

    private let eventLoop: any EventLoop
    private var buckets: [[Entry]]
    private var scheduledCount = 0
    /// The last tick whose bucket has been swept.
    private var sweptTick: Int64
    private var ticking: Scheduled<Void>?
    /// The connection whose input a listener is handling on this loop right now, if
    /// any: a write that fills another connection's send buffer makes it wait too
    /// (backpressure for relays and broadcasts). Kept here, as the wheel is already
    /// the one per-loop object every connection holds.
    var reading: Connection?

    private init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
        self.buckets = Array(repeating: [], count: Self.bucketCount)
        self.sweptTick = Self.lastTick(atOrBefore: eventLoop.now)
    }

    /// The loop's clock, which every deadline on the wheel is measured by: the wall
    /// clock on a real loop, the virtual one on an `EmbeddedEventLoop` (so a test can
    /// step a timeout exactly).
    public var now: NIODeadline { eventLoop.now }

    /// The wheel of the loop running this code. Each loop is one thread, so a
    /// thread-local gives every loop its own wheel with no lock and no lookup table.
    public static func current(on eventLoop: any EventLoop) -> LoopTimers {
        eventLoop.preconditionInEventLoop()
        if let timers = perThread.currentValue, timers.eventLoop === eventLoop { return timers }
        let timers = LoopTimers(eventLoop: eventLoop)
        perThread.currentValue = timers
        return timers
    }

    /// One wheel per event-loop thread; never shared across threads, hence unchecked.
    private static let perThread = ThreadSpecificVariable<LoopTimers>()

    /// Schedules `target` at `deadline`, replacing its earlier deadline if any.
    public func schedule(_ target: any LoopTimerTarget, at deadline: NIODeadline) {
        cancel(target)
        let tick = max(Self.firstTick(atOrAfter: deadline), sweptTick + 1)
        let bucket = Int(tick % Int64(Self.bucketCount))
        target.loopTimerSlot = LoopTimerSlot(bucket: Int32(bucket), index: Int32(buckets[bucket].count))
        buckets[bucket].append(Entry(target: target, deadline: deadline))
        scheduledCount += 1
        if ticking == nil { startTicking() }
    }

    /// Removes `target`'s deadline, if it has one.
    public func cancel(_ target: any LoopTimerTarget) {
        let slot = target.loopTimerSlot
        guard slot.isScheduled else { return }
        let bucket = Int(slot.bucket), index = Int(slot.index)
        let last = buckets[bucket].count - 1
        if index != last {
            let moved = buckets[bucket][last]
            buckets[bucket][index] = moved
            moved.target.loopTimerSlot.index = Int32(index)
        }
        buckets[bucket].removeLast()
        target.loopTimerSlot = LoopTimerSlot()
        scheduledCount -= 1
    }

    /// How many targets have a deadline (for tests).
    public var count: Int { scheduledCount }

    private func startTicking() {
        ticking = eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(in: Self.tick) { [self] in
            ticking = nil
            sweep(now: eventLoop.now)
            if scheduledCount > 0 { startTicking() }
        }
    }

    /// Fires every target whose deadline has passed, bucket by bucket up to now.
    private func sweep(now: NIODeadline) {
        let nowTick = Self.lastTick(atOrBefore: now)
        // After a stall longer than a turn of the wheel, one pass over every bucket suffices.
        var tick = max(sweptTick + 1, nowTick - Int64(Self.bucketCount) + 1)
        while tick <= nowTick {
            let bucket = Int(tick % Int64(Self.bucketCount))
            var due: [any LoopTimerTarget] = []
            var index = 0
            while index < buckets[bucket].count {
                let entry = buckets[bucket][index]
                if entry.deadline <= now {
                    cancel(entry.target)  // swaps the last entry into `index`
                    due.append(entry.target)
                } else {
                    index += 1  // due in a later turn of the wheel
                }
            }
            // Fired after the bucket is settled: a target may schedule itself again.
            for target in due { target.loopTimerFired() }
            tick += 1
        }
        sweptTick = nowTick
    }

    /// The first tick at or after `deadline`: a target in that tick's bucket is due
    /// whenever the bucket is swept.
    private static func firstTick(atOrAfter deadline: NIODeadline) -> Int64 {
        let tickNanoseconds = UInt64(tick.nanoseconds)
        return Int64((deadline.uptimeNanoseconds + tickNanoseconds - 1) / tickNanoseconds)
    }

    /// The last tick that has begun by `time`: buckets up to it may be swept.
    private static func lastTick(atOrBefore time: NIODeadline) -> Int64 {
        Int64(time.uptimeNanoseconds / UInt64(tick.nanoseconds))
    }
}

extension LoopTimers: @unchecked Sendable {}  // only for the thread-local; used on its own loop only

private extension LoopTimerSlot {
    init(bucket: Int32, index: Int32) {
        self.bucket = bucket
        self.index = index
    }
}

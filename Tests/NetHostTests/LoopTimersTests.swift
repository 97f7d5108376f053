import NIOCore
import NIOEmbedded
import NIOPosix
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging

/// The per-loop timer wheel behind read, send and PROXY header timeouts, on an
/// `EmbeddedEventLoop`: time moves only when the test says, so each deadline's
/// moment of firing is known exactly.
@Suite("Loop timers")
struct LoopTimersTests {
    /// Records the loop's time when it fires; may reschedule itself once.
    final class Probe: LoopTimerTarget {
        var loopTimerSlot = LoopTimerSlot()
        let name: Int
        private(set) var deadline = NIODeadline.uptimeNanoseconds(0)
        var rescheduleAfterFiring: TimeAmount?
        private(set) var fired: [(deadline: NIODeadline, at: NIODeadline)] = []
        let timers: LoopTimers

        init(name: Int, timers: LoopTimers) {
            self.name = name
            self.timers = timers
        }

        func schedule(in delay: TimeAmount) {
            deadline = timers.now + delay
            timers.schedule(self, at: deadline)
        }

        func loopTimerFired() {
            fired.append((deadline, timers.now))
            if let again = rescheduleAfterFiring {
                rescheduleAfterFiring = nil
                schedule(in: again)
            }
        }
    }

    /// The first tick of the wheel at or after `deadline`: when a deadline is due
    /// to fire, the loop's clock having started at zero.
    static func firstTick(atOrAfter deadline: NIODeadline) -> NIODeadline {
        let tick = UInt64(LoopTimers.tick.nanoseconds)
        return .uptimeNanoseconds((deadline.uptimeNanoseconds + tick - 1) / tick * tick)
    }

    @Test("each deadline fires once, at the first tick at or after it (never early, less than a tick late); cancelled ones never fire")
    func firesOnceAtItsTick() throws {
        let loop = EmbeddedEventLoop()
        let timers = LoopTimers.current(on: loop)
        let probes = (0..<1_000).map { Probe(name: $0, timers: timers) }
        for probe in probes { probe.schedule(in: .milliseconds(Int64(probe.name % 500))) }
        // Every tenth is cancelled; every seventh moved later by 200 ms; one reschedules itself.
        for probe in probes where probe.name % 10 == 0 { timers.cancel(probe) }
        for probe in probes where probe.name % 7 == 0 && probe.name % 10 != 0 {
            probe.schedule(in: .milliseconds(Int64(probe.name % 500) + 200))
        }
        probes[1].rescheduleAfterFiring = .milliseconds(150)
        // A millisecond at a time, so that the time of each firing is seen as it happens.
        for _ in 0..<1_500 { loop.advanceTime(by: .milliseconds(1)) }

        for probe in probes {
            let expected = probe.name % 10 == 0 ? 0 : (probe.name == 1 ? 2 : 1)
            #expect(probe.fired.count == expected, "probe \(probe.name)")
            for firing in probe.fired {
                #expect(firing.at == Self.firstTick(atOrAfter: firing.deadline), "probe \(probe.name): due \(firing.deadline), fired \(firing.at)")
            }
        }
        #expect(probes[1].fired.last?.deadline == .uptimeNanoseconds(100_000_000 + 150_000_000), "rescheduled from its first firing, at 100 ms")
        #expect(timers.count == 0)
    }

    @Test("a deadline a turn of the wheel away shares a bucket with an early one, but fires only when due")
    func laterTurnOfTheWheel() throws {
        let loop = EmbeddedEventLoop()
        let timers = LoopTimers.current(on: loop)
        let soon = Probe(name: 0, timers: timers)
        let later = Probe(name: 1, timers: timers)
        soon.schedule(in: .milliseconds(8_800))
        later.schedule(in: .milliseconds(8_800 + 51_200))  // 512 ticks of 100 ms: the same bucket
        loop.advanceTime(by: .milliseconds(8_800))
        #expect(soon.fired.count == 1)
        #expect(later.fired.isEmpty)
        #expect(timers.count == 1)
        loop.advanceTime(by: .milliseconds(51_199))
        #expect(later.fired.isEmpty)
        loop.advanceTime(by: .milliseconds(1))
        #expect(later.fired.map(\.at) == [.uptimeNanoseconds(60_000_000_000)])
        #expect(timers.count == 0)
    }

    @Test("each event loop has its own wheel")
    func onePerLoop() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        defer { try? group.syncShutdownGracefully() }
        let loops = Array(group.makeIterator())
        let first = try loops[0].submit { ObjectIdentifier(LoopTimers.current(on: loops[0])) }.wait()
        let again = try loops[0].submit { ObjectIdentifier(LoopTimers.current(on: loops[0])) }.wait()
        let second = try loops[1].submit { ObjectIdentifier(LoopTimers.current(on: loops[1])) }.wait()
        #expect(first == again)
        #expect(first != second)
    }
}

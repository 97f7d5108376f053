import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
@testable import NetHost

/// The per-loop timer wheel behind read, send and PROXY header timeouts.
@Suite("Loop timers")
struct LoopTimersTests {
    /// Records when it fired, relative to its deadline; may reschedule itself once.
    final class Probe: LoopTimerTarget {
        var loopTimerSlot = LoopTimerSlot()
        let name: Int
        var deadline: NIODeadline = .now()
        var rescheduleAfterFiring: TimeAmount?
        let fired: NIOLockedValueBox<[(name: Int, lateness: TimeAmount)]>
        let timers: LoopTimers

        init(name: Int, timers: LoopTimers, fired: NIOLockedValueBox<[(name: Int, lateness: TimeAmount)]>) {
            self.name = name
            self.timers = timers
            self.fired = fired
        }

        func schedule(in delay: TimeAmount) {
            deadline = .now() + delay
            timers.schedule(self, at: deadline)
        }

        func loopTimerFired() {
            let lateness = NIODeadline.now() - deadline
            fired.withLockedValue { $0.append((name, lateness)) }
            if let again = rescheduleAfterFiring {
                rescheduleAfterFiring = nil
                schedule(in: again)
            }
        }
    }

    private func onLoop<T: Sendable>(_ loop: any EventLoop, _ body: @escaping () -> T) throws -> T {
        try loop.submit(body).wait()
    }

    @Test("each deadline fires once, never early, within a tick or two; cancelled ones never fire")
    func firesOnceNeverEarly() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let loop = group.next()
        let fired = NIOLockedValueBox<[(name: Int, lateness: TimeAmount)]>([])
        let probes = try loop.submit {
            let timers = LoopTimers.current(on: loop)
            let probes = (0..<1_000).map { Probe(name: $0, timers: timers, fired: fired) }
            for probe in probes { probe.schedule(in: .milliseconds(Int64(probe.name % 500))) }
            // Every tenth is cancelled; every seventh moved later by 200 ms; one reschedules itself.
            for probe in probes where probe.name % 10 == 0 { timers.cancel(probe) }
            for probe in probes where probe.name % 7 == 0 && probe.name % 10 != 0 { probe.schedule(in: .milliseconds(Int64(probe.name % 500) + 200)) }
            probes[1].rescheduleAfterFiring = .milliseconds(150)
            return NIOLoopBound(probes, eventLoop: loop)  // kept alive until the end
        }.wait()
        Thread.sleep(forTimeInterval: 1.5)
        let results = fired.withLockedValue { $0 }
        let expected = (0..<1_000).filter { $0 % 10 != 0 }
        #expect(Set(results.map(\.name)) == Set(expected))
        #expect(results.count == expected.count + 1)  // probe 1 fired twice
        #expect(results.allSatisfy { $0.lateness >= .zero }, "a deadline fired early")
        // Late by at most a tick plus scheduling slack (generous: a busy CI machine).
        #expect(results.allSatisfy { $0.lateness < .milliseconds(600) })
        let remaining = try onLoop(loop) { LoopTimers.current(on: loop).count }
        #expect(remaining == 0)
        _ = probes
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

import Dispatch
import NIOConcurrencyHelpers
import Testing
@testable import ProxyModule

/// The registry of connections waiting for their PROXY header, alone: which one
/// each budget sheds, and that leaving, shedding and admitting keep its counts right
/// from many threads at once. (The stage that closes what it sheds: ProxyHeaderStageTests.)
@Suite("Pending headers: the oldest waiting connection is shed")
struct PendingHeadersTests {
    /// A slot that records its sheds in `shed`.
    final class Recorder: Sendable {
        let sheds = NIOLockedValueBox<[(name: String, reason: PendingHeaders.ShedReason)]>([])

        func slot(_ name: String, from address: String = "127.0.0.1") -> PendingHeaders.Slot {
            PendingHeaders.Slot(address: address) { [self] reason in sheds.withLockedValue { $0.append((name, reason)) } }
        }

        /// Sheds what `admit` picked, as the stage does, and returns their names.
        func admit(_ slot: PendingHeaders.Slot, to pending: PendingHeaders, perAddress: Int = 256, overall: Int = 10_000) -> [String] {
            let before = sheds.withLockedValue { $0.count }
            for shed in pending.admit(slot, perAddress: perAddress, overall: overall) {
                shed.slot.shed(shed.reason)
            }
            return sheds.withLockedValue { $0[before...].map(\.name) }
        }
    }

    @Test("per address: past the budget the oldest of that address goes, in the order they came; other addresses are untouched")
    func perAddressOldestFirst() {
        let pending = PendingHeaders()
        let recorder = Recorder()
        let slots = (0 ..< 5).map { recorder.slot("a\($0)") }
        let other = recorder.slot("b0", from: "127.0.0.2")
        #expect(recorder.admit(other, to: pending, perAddress: 3).isEmpty)
        for slot in slots[0 ..< 3] {
            #expect(recorder.admit(slot, to: pending, perAddress: 3).isEmpty)
        }
        #expect(recorder.admit(slots[3], to: pending, perAddress: 3) == ["a0"])
        #expect(recorder.admit(slots[4], to: pending, perAddress: 3) == ["a1"])
        #expect(recorder.sheds.withLockedValue { $0.map(\.reason) } == [.perAddress(limit: 3), .perAddress(limit: 3)])
        #expect(pending.count(from: "127.0.0.1") == 3)
        #expect(pending.count(from: "127.0.0.2") == 1)
        #expect(pending.count == 4)
    }

    @Test("a connection that leaves from the middle is skipped; leaving twice, or after being shed, changes nothing")
    func leaving() {
        let pending = PendingHeaders()
        let recorder = Recorder()
        let slots = (0 ..< 4).map { recorder.slot("a\($0)") }
        for slot in slots[0 ..< 3] { _ = recorder.admit(slot, to: pending, perAddress: 3) }
        pending.leave(slots[1])
        pending.leave(slots[1])
        #expect(pending.count == 2)
        #expect(recorder.admit(slots[3], to: pending, perAddress: 3).isEmpty, "three waiting: within the budget")
        #expect(recorder.admit(recorder.slot("a4"), to: pending, perAddress: 3) == ["a0"])
        #expect(recorder.admit(recorder.slot("a5"), to: pending, perAddress: 3) == ["a2"], "a1 left: the next oldest is a2")
        pending.leave(slots[0])
        #expect(pending.count == 3, "a0 was shed: it holds nothing to give back")
        for slot in slots { pending.leave(slot) }
        #expect(pending.count == 2)
        #expect(pending.addressCount == 1)
    }

    @Test("overall: past the budget the oldest of any address goes, after the address's own budget had its say")
    func overallOldestFirst() {
        let pending = PendingHeaders()
        let recorder = Recorder()
        #expect(recorder.admit(recorder.slot("a0"), to: pending, perAddress: 2, overall: 3).isEmpty)
        #expect(recorder.admit(recorder.slot("b0", from: "10.0.0.2"), to: pending, perAddress: 2, overall: 3).isEmpty)
        #expect(recorder.admit(recorder.slot("a1"), to: pending, perAddress: 2, overall: 3).isEmpty)
        #expect(recorder.admit(recorder.slot("c0", from: "10.0.0.3"), to: pending, perAddress: 2, overall: 3) == ["a0"])
        #expect(recorder.admit(recorder.slot("a2"), to: pending, perAddress: 2, overall: 3) == ["b0"],
                "the oldest overall, though its address has only that one waiting")
        #expect(recorder.admit(recorder.slot("a3"), to: pending, perAddress: 2, overall: 3) == ["a1"],
                "its own address's oldest, which brings the total back within the budget too")
        #expect(recorder.sheds.withLockedValue { $0.map(\.reason) } == [.global(limit: 3), .global(limit: 3), .perAddress(limit: 2)])
        #expect(pending.count == 3)
        #expect(pending.addressCount == 2)
    }

    @Test("after a reload lowered a budget, the next admission sheds down to it, oldest first, and never the new connection")
    func loweredBudget() {
        let pending = PendingHeaders()
        let recorder = Recorder()
        for n in 0 ..< 5 { _ = recorder.admit(recorder.slot("a\(n)"), to: pending) }
        #expect(recorder.admit(recorder.slot("a5"), to: pending, perAddress: 2) == ["a0", "a1", "a2", "a3"])
        #expect(recorder.admit(recorder.slot("a6"), to: pending, perAddress: 1, overall: 1) == ["a4", "a5"])
        #expect(pending.count == 1)
    }

    @Test("from 4 threads, 4,000 connections of 8 addresses admitted and most leaving: each shed at most once, counts exact")
    func concurrent() {
        let pending = PendingHeaders()
        let shedCounts = NIOLockedValueBox<[Int: Int]>([:])
        let admitted = NIOLockedValueBox(0)
        DispatchQueue.concurrentPerform(iterations: 4) { thread in
            for n in 0 ..< 1000 {
                let id = thread * 1000 + n
                let slot = PendingHeaders.Slot(address: "10.0.0.\(id % 8)") { _ in shedCounts.withLockedValue { $0[id, default: 0] += 1 } }
                for shed in pending.admit(slot, perAddress: 20, overall: 100) { shed.slot.shed(shed.reason) }
                if n % 3 != 0 {
                    pending.leave(slot)
                } else {
                    admitted.withLockedValue { $0 += 1 }
                }
            }
        }
        let sheds = shedCounts.withLockedValue { $0 }
        #expect(sheds.values.allSatisfy { $0 == 1 })
        // Those that stayed are either still waiting or were shed (an admitted one that
        // then left may have been shed just before it left, too).
        #expect(pending.count <= 100)
        #expect(pending.count + sheds.count >= admitted.withLockedValue { $0 })
        #expect((0 ..< 8).allSatisfy { pending.count(from: "10.0.0.\($0)") <= 20 })
        #expect((0 ..< 8).reduce(0) { $0 + pending.count(from: "10.0.0.\($1)") } == pending.count)
    }
}

import Testing
@testable import NetHost

/// What a new plan does to the open listeners, worked out without a socket:
/// a listener no longer planned closes, a new one opens, one whose connections
/// must live on other loops moves, and an unchanged one is left alone.
@Suite("Listen changes")
struct ListenChangesTests {
    /// Stand-ins for event loops: only their identities matter here.
    final class Loop: Sendable {}
    static let lua = Loop(), other = Loop()
    static let luaLoop: ListenChanges.Loops = [ObjectIdentifier(lua)]
    static let everyLoop: ListenChanges.Loops = [ObjectIdentifier(lua), ObjectIdentifier(other)]

    static func entry(_ service: String, _ port: Int, _ interface: String = "127.0.0.1") -> ListenPlan.Entry {
        ListenPlan.Entry(service: service, interface: interface, port: port)
    }

    static func placed(_ entry: ListenPlan.Entry, _ loops: ListenChanges.Loops) -> ListenChanges.Placement {
        ListenChanges.Placement(entry: entry, loops: loops)
    }

    @Test("the first plan opens everything")
    func firstPlanOpensAll() {
        let planned = [Self.placed(Self.entry("demo_echo", 5000), Self.luaLoop), Self.placed(Self.entry("proxy", 5001), Self.everyLoop)]
        let changes = ListenChanges(planned: planned, open: [:])
        #expect(changes.opening == planned)
        #expect(changes.moving.isEmpty)
        #expect(changes.closing.isEmpty)
    }

    @Test("the same plan again changes nothing")
    func samePlanChangesNothing() {
        let echo = Self.entry("demo_echo", 5000)
        let changes = ListenChanges(planned: [Self.placed(echo, Self.luaLoop)], open: [echo: Self.luaLoop])
        #expect(changes == ListenChanges(planned: [], open: [:]))
    }

    @Test("a listener no longer planned closes; one planned anew opens; the others stay")
    func removedCloseAddedOpen() {
        let (kept, removed, added) = (Self.entry("demo_echo", 5000), Self.entry("demo_echo", 5001), Self.entry("demo_chat", 5002))
        let changes = ListenChanges(
            planned: [Self.placed(kept, Self.luaLoop), Self.placed(added, Self.luaLoop)],
            open: [kept: Self.luaLoop, removed: Self.luaLoop]
        )
        #expect(changes.closing == [removed])
        #expect(changes.opening == [Self.placed(added, Self.luaLoop)])
        #expect(changes.moving.isEmpty)
    }

    @Test("a port remapped from a Swift service to a Lua one moves to the Lua loop instead of closing")
    func remappedPortMoves() {
        let proxy = Self.entry("net_proxy", 15222)
        let changes = ListenChanges(planned: [Self.placed(proxy, Self.luaLoop)], open: [proxy: Self.everyLoop])
        #expect(changes.moving == [Self.placed(proxy, Self.luaLoop)])
        #expect(changes.closing.isEmpty)
        #expect(changes.opening.isEmpty)
    }

    @Test("a port listed twice for one service opens once and moves once")
    func duplicatesOnce() {
        let (fresh, moved) = (Self.entry("demo_echo", 5000), Self.entry("net_proxy", 15222))
        let changes = ListenChanges(
            planned: [
                Self.placed(fresh, Self.luaLoop), Self.placed(fresh, Self.luaLoop),
                Self.placed(moved, Self.everyLoop), Self.placed(moved, Self.everyLoop),
            ],
            open: [moved: Self.luaLoop]
        )
        #expect(changes.opening.map(\.entry) == [fresh])
        #expect(changes.moving.map(\.entry) == [moved])
    }

    @Test("the same port on another interface is another listener")
    func interfacesAreDistinct() {
        let (v4, v6) = (Self.entry("demo_echo", 5000, "127.0.0.1"), Self.entry("demo_echo", 5000, "::1"))
        let changes = ListenChanges(planned: [Self.placed(v6, Self.luaLoop)], open: [v4: Self.luaLoop])
        #expect(changes.closing == [v4])
        #expect(changes.opening.map(\.entry) == [v6])
    }
}

import NetHostCore

/// What must happen to the open listeners for them to match a plan: which close,
/// which open, and which move to other event loops. Worked out from names and
/// loop identities only, so a reload's effect on the ports can be tested without
/// binding one.
///
/// A listener is identified by service, interface and port; the loops are where
/// its connections must live (the Lua loop for Lua services, every loop for Swift
/// ones). A listener whose key is still planned but whose loops changed (a reload
/// mapped a PROXY port from a Swift service to a Lua one, or back) moves rather
/// than closing and reopening, so the port never refuses a connection.
struct ListenChanges: Equatable {
    typealias Loops = Set<ObjectIdentifier>

    /// One planned listener and the loops its connections must live on.
    struct Placement: Equatable {
        let entry: ListenPlan.Entry
        let loops: Loops
    }

    /// Open now, and planned no more.
    private(set) var closing: Set<ListenPlan.Entry> = []
    /// Planned, not open yet.
    private(set) var opening: [Placement] = []
    /// Open, but on other loops than planned.
    private(set) var moving: [Placement] = []

    /// `open`: each open listener's key and the loops it accepts on.
    init(planned: [Placement], open: [ListenPlan.Entry: Loops]) {
        let plannedKeys = Set(planned.map(\.entry))
        closing = Set(open.keys).subtracting(plannedKeys)
        var current = open
        var seen: Set<ListenPlan.Entry> = []
        for placement in planned {
            // A port listed twice for one service is planned once.
            guard seen.insert(placement.entry).inserted else { continue }
            switch current[placement.entry] {
            case nil:
                opening.append(placement)
            case let loops? where loops != placement.loops:
                moving.append(placement)
                current[placement.entry] = placement.loops
            default:
                continue
            }
        }
    }
}

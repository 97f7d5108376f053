import NetHostCore
import Testing
@testable import NetHost

/// Which inherited listening socket serves which planned port, worked out from
/// addresses: a socket goes to the entry at its address whatever it served before,
/// a port 0 is matched by service, and what matches nothing is left over (closed).
@Suite("Listener inheritance")
struct ListenerInheritanceTests {
    static func entry(_ service: String, _ port: Int, _ interface: String = "127.0.0.1") -> ListenPlan.Entry {
        ListenPlan.Entry(service: service, interface: interface, port: port)
    }

    /// A socket as a takeover hands it (with what it served) or as systemd passes it.
    static func socket(
        _ descriptor: Int32, _ host: String, _ port: Int, handedBy service: String? = nil, configured: Int? = nil, interface: String? = nil
    ) -> InheritedListener {
        let handed = service.map {
            HandedListener(service: $0, interface: interface ?? host, port: configured ?? port, boundPort: port)
        }
        return InheritedListener(descriptor: descriptor, host: host, port: port, handed: handed)
    }

    @Test("every socket at a planned address goes to that entry (one per event loop of the process before)")
    func allSocketsOfAnAddress() {
        let proxy = Self.entry("proxy", 17781)
        let first = Self.socket(10, "127.0.0.1", 17781, handedBy: "proxy")
        let second = Self.socket(11, "127.0.0.1", 17781, handedBy: "proxy")
        let inheritance = ListenerInheritance(entries: [proxy], inherited: [first, second])
        #expect(inheritance.assigned == [proxy: [first, second]])
        #expect(inheritance.unmatched.isEmpty)
    }

    @Test("a socket goes to the service the new config puts at its address, not the one it served before")
    func addressWinsOverService() {
        let echo = Self.entry("echo", 5000)
        let socket = Self.socket(10, "127.0.0.1", 5000, handedBy: "whoami")
        #expect(ListenerInheritance(entries: [echo], inherited: [socket]).assigned == [echo: [socket]])
    }

    @Test("sockets of ports the new config no longer has, or on another interface, are left over")
    func unmatchedAreLeftOver() {
        let kept = Self.socket(10, "127.0.0.1", 5000, handedBy: "echo")
        let dropped = Self.socket(11, "127.0.0.1", 5001, handedBy: "echo")
        let elsewhere = Self.socket(12, "::1", 5000, handedBy: "echo")
        let echo = Self.entry("echo", 5000)
        let inheritance = ListenerInheritance(entries: [echo], inherited: [kept, dropped, elsewhere])
        #expect(inheritance.assigned == [echo: [kept]])
        #expect(inheritance.unmatched == [dropped, elsewhere])
    }

    @Test("`*` is 0.0.0.0, `::` the IPv6 wildcard, and addresses compare as addresses")
    func interfaces() {
        let wildcard = Self.socket(10, "0.0.0.0", 5000)
        let v6 = Self.socket(11, "::", 5000)
        let loopback6 = Self.socket(12, "::1", 5000)
        let entries = [Self.entry("a", 5000, "*"), Self.entry("b", 5000, "::"), Self.entry("c", 5000, "0:0::1")]
        let inheritance = ListenerInheritance(entries: entries, inherited: [wildcard, v6, loopback6])
        #expect(inheritance.assigned == [entries[0]: [wildcard], entries[1]: [v6], entries[2]: [loopback6]])
        #expect(!ListenerInheritance.sameHost("*", "::"))
        #expect(!ListenerInheritance.sameHost("127.0.0.1", "0.0.0.0"))
    }

    @Test("a port configured as 0 takes the socket its service had with port 0 on that interface, and no other")
    func portZero() {
        let any = Self.entry("echo", 0)
        let echoAny = Self.socket(10, "127.0.0.1", 41234, handedBy: "echo", configured: 0)
        let chatAny = Self.socket(11, "127.0.0.1", 41235, handedBy: "chat", configured: 0)
        let echoFixed = Self.socket(12, "127.0.0.1", 41236, handedBy: "echo")
        let fromSystemd = Self.socket(13, "127.0.0.1", 41237)
        let inheritance = ListenerInheritance(entries: [any], inherited: [echoAny, chatAny, echoFixed, fromSystemd])
        #expect(inheritance.assigned == [any: [echoAny]])
        #expect(inheritance.unmatched == [chatAny, echoFixed, fromSystemd])
    }

    @Test("two entries at one address (a clash the port manager reports): the first gets the sockets")
    func clashGoesToTheFirst() {
        let socket = Self.socket(10, "127.0.0.1", 5000)
        let first = Self.entry("echo", 5000), second = Self.entry("chat", 5000)
        let inheritance = ListenerInheritance(entries: [first, second, first], inherited: [socket])
        #expect(inheritance.assigned == [first: [socket]])
    }
}

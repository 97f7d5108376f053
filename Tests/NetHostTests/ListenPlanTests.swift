import NIOCore
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging

/// Where each service listens, as Prosody's portmanager decides it: the
/// service's own options, `local_interfaces` for private services, `interfaces`,
/// then what the service asked for; ports as `tonumber` reads them.
@Suite("Listen plan")
struct ListenPlanTests {
    final class Silent: ConnectionListener {
        func onIncoming(_ connection: Connection, data: ByteBuffer) throws {}
        var wantsDrain: Bool { false }
    }

    static func service(_ name: String, isPrivate: Bool = false, ports: [Int] = [5000]) -> NetService {
        NetService(name: name, handling: .listener(Silent(), .anyLoop), module: name, defaultPorts: ports, isPrivate: isPrivate)
    }

    static func interfaces(_ plan: ListenPlan, of service: String) -> Set<String> {
        Set(plan.entries.filter { $0.service == service }.map(\.interface))
    }

    @Test("a private service listens on local_interfaces even when interfaces is set")
    func privateServiceUsesLocalInterfaces() {
        let plan = ListenPlan(
            services: [Self.service("admin", isPrivate: true), Self.service("public")],
            options: FixedOptions(global: [
                "interfaces": .strings("*"),
                "local_interfaces": .strings("127.0.0.1"),
            ]))
        #expect(Self.interfaces(plan, of: "admin") == ["127.0.0.1"])
        #expect(Self.interfaces(plan, of: "public") == ["*"])
    }

    @Test("without local_interfaces a private service listens on loopback, whatever interfaces says")
    func privateServiceDefaultsToLoopback() {
        let plan = ListenPlan(services: [Self.service("admin", isPrivate: true)],
                              options: FixedOptions(global: ["interfaces": .strings("*")]))
        #expect(Self.interfaces(plan, of: "admin") == ["127.0.0.1", "::1"])
    }

    @Test("NAME_interfaces wins over local_interfaces for a private service")
    func ownInterfacesWin() {
        let plan = ListenPlan(
            services: [Self.service("admin", isPrivate: true)],
            options: FixedOptions(global: ["admin_interfaces": .strings("192.0.2.1"), "local_interfaces": .strings("127.0.0.1")]))
        #expect(Self.interfaces(plan, of: "admin") == ["192.0.2.1"])
    }

    @Test("ports given as strings, as ENV_ variables give them, are read as numbers",
          arguments: [("28512", 28512), (" 28513 ", 28513), ("0x6F60", 28512), ("28514.0", 28514)])
    func portsFromStrings(text: String, port: Int) {
        let plan = ListenPlan(services: [Self.service("echo")],
                              options: FixedOptions(global: ["echo_ports": .list(.string(text))]))
        #expect(plan.problems.isEmpty)
        #expect(plan.entries.map(\.port) == [port, port])
    }

    @Test("a string that is not a number is still refused as a port", arguments: ["ECHO_PORT", "inf", "", "12ab"])
    func nonNumericPortIsRefused(text: String) {
        let plan = ListenPlan(services: [Self.service("echo")],
                              options: FixedOptions(global: ["echo_ports": .list(.string(text))]))
        #expect(plan.problems == ["echo_ports: \"\(text)\" is not a port number (0-65535)"])
    }
}

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
        let plan = ListenPlan(services: [Self.service("demo_echo")],
                              options: FixedOptions(global: ["demo_echo_ports": .list(.string(text))]))
        #expect(plan.problems.isEmpty)
        #expect(plan.entries.map(\.port) == [port, port])
    }

    @Test("a string that is not a number is still refused as a port", arguments: ["ECHO_PORT", "inf", "", "12ab"])
    func nonNumericPortIsRefused(text: String) {
        let plan = ListenPlan(services: [Self.service("demo_echo")],
                              options: FixedOptions(global: ["demo_echo_ports": .list(.string(text))]))
        #expect(plan.problems == ["demo_echo_ports: \"\(text)\" is not a port number (0-65535)"])
    }

    /// A PROXY-like pipeline: port 15000 hands its connections to "app".
    struct HandsOver: ServicePipeline {
        func executor(forPort port: Int, services: ServiceRegistry) -> NetService.Executor { .anyLoop }
        func initialize(channel: any Channel, port: Int, context: PipelineContext) -> EventLoopFuture<Void> {
            channel.eventLoop.makeSucceededVoidFuture()
        }
        func handOverTarget(forPort port: Int) -> String? { port == 15000 ? "app" : nil }
    }

    static let proxy = NetService(name: "proxy", handling: .pipeline(HandsOver()), module: "proxy", defaultPorts: [15000])

    @Test("a service behind a PROXY port that also listens on its default port is reported once")
    func bypassIsReported() {
        let plan = ListenPlan(services: [Self.proxy, Self.service("app", ports: [5000])],
                              options: FixedOptions(global: ["interfaces": .strings("127.0.0.1", "::1")]))
        #expect(plan.bypasses == [
            "service 'app' is reached through the PROXY port 15000, and also listens on its own default port 5000 "
                + "(127.0.0.1, ::1), where clients bypass the proxy; set app_ports = {} to serve it only through "
                + "the proxy, or list its ports to keep both",
        ])
    }

    @Test("app_ports set, even to its default or to nothing, says the direct port is meant", arguments: [
        ConfigValue.list(), .list(.integer(5000)),
    ])
    func explicitPortsAreNotABypass(ports: ConfigValue) {
        let plan = ListenPlan(services: [Self.proxy, Self.service("app", ports: [5000])],
                              options: FixedOptions(global: ["app_ports": ports]))
        #expect(plan.bypasses.isEmpty)
    }

    @Test("a service on its default port that no PROXY port hands to is no bypass")
    func unmappedServiceIsNoBypass() {
        let plan = ListenPlan(services: [Self.proxy, Self.service("other", ports: [5001])], options: FixedOptions(global: [:]))
        #expect(plan.bypasses.isEmpty)
    }
}

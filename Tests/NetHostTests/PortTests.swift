import Foundation
import NetHostTestSupport
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging

@Suite("Ports", .serialized)
struct PortTests {
    static let service = """
        module:provides("net", { name = module:get_name(), listener = { onconnect = function (conn) conn:write(module:get_name() .. "\\n") end } })
        """

    @Test("a port that cannot be opened is an error naming port, interface, service and reason; the other ports still open")
    func portInUse() async throws {
        let occupied = try FreePort.allocate()
        let blocker = try TestListener(port: occupied)
        let fixture = try HostFixture(modules: ["one": Self.service, "two": Self.service])
        let server = try await fixture.start(options: [
            "modules_enabled": .strings("one", "two"),
            "one_ports": .list(.integer(occupied)),
            "two_ports": .list(.integer(0)),
        ])
        #expect(server.problems.all.contains {
            $0.contains("could not listen on port \(occupied) of interface 127.0.0.1 for service 'one'") && $0.contains("already in use")
        })
        let client = try fixture.connect(to: "two")
        #expect(try client.readLine() == "two")
        _ = blocker
        await fixture.stop()
    }

    @Test("two services on one port is an error")
    func twoServicesOnePort() async throws {
        let port = try FreePort.allocate()
        let fixture = try HostFixture(modules: ["one": Self.service, "two": Self.service])
        let server = try await fixture.start(options: [
            "modules_enabled": .strings("one", "two"),
            "one_ports": .list(.integer(port)),
            "two_ports": .list(.integer(port)),
        ])
        #expect(server.problems.all.contains { $0.contains("service 'one' is already configured on this port") })
        let client = try TestClient(connectingTo: "127.0.0.1", port: port)
        #expect(try client.readLine() == "one")
        await fixture.stop()
    }

    @Test("services listen on IPv6 too, from NAME_interfaces")
    func ipv6() async throws {
        let port = try FreePort.allocate()
        let fixture = try HostFixture(modules: ["one": Self.service])
        try await fixture.start(options: [
            "modules_enabled": .strings("one"),
            "one_ports": .list(.integer(port)),
            "one_interfaces": .strings("::1", "127.0.0.1"),
        ])
        let client6 = try TestClient(connectingTo: "::1", port: port)
        #expect(try client6.readLine() == "one")
        let client4 = try TestClient(connectingTo: "127.0.0.1", port: port)
        #expect(try client4.readLine() == "one")
        await fixture.stop()
    }

    @Test("a bad NAME_ports entry is reported")
    func badPort() async throws {
        let fixture = try HostFixture(modules: ["one": Self.service])
        let server = try await fixture.start(options: ["modules_enabled": .strings("one"), "one_ports": .list(.integer(70000))])
        #expect(server.problems.all.contains("one_ports: 70000 is not a port number (0-65535)"))
        await fixture.stop()
    }
}

/// Holds a port open so NetHost cannot bind it.
final class TestListener {
    let fd: Int32
    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        let ok = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard ok, listen(fd, 1) == 0 else { throw FixtureError("could not hold port \(port)") }
    }
    deinit { close(fd) }
}

@Suite("Connection limits", .serialized)
struct ConnectionLimitTests {
    @Test("past max_connections a new connection is closed at accept; a slot frees when one closes")
    func maxConnections() async throws {
        let fixture = try HostFixture(modules: ["one": PortTests.service])
        try await fixture.start(options: [
            "modules_enabled": .strings("one"), "one_ports": .list(.integer(0)),
            "network_settings": .table(ConfigTable(map: [.string("max_connections"): .integer(2)])),
        ])
        var held = [try fixture.connect(to: "one"), try fixture.connect(to: "one")]
        for client in held { #expect(try client.readLine() == "one") }
        let third = try fixture.connect(to: "one")
        #expect(try third.readToEnd().isEmpty)
        #expect(fixture.logs.contains("max_connections (2) reached: refused a connection"))
        held.removeFirst()
        #expect(fixture.eventually {
            (try? { try fixture.connect(to: "one").readLine() }()) == "one"
        })
        await fixture.stop()
    }
}

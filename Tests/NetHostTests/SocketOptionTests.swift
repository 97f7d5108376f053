import Foundation
import NetHostTestSupport
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging
#if canImport(Glibc)
import Glibc
#endif

/// `network_settings.tcp_nodelay`, `tcp_keepalive` and `tcp_backlog`, read back
/// from the kernel: the options of the server's end of a real connection
/// (`getsockopt`), and the listening socket's backlog (as `ss` shows it).
@Suite("Socket options from network_settings", .serialized)
struct SocketOptionTests {
    static let echo = """
        module:provides("net", { name = "demo_echo", listener = { onincoming = function (conn, data) conn:write(data) end } })
        """

    /// A host serving `echo` with `network_settings = settings` (none if nil).
    private func withEcho(_ settings: [String: ConfigValue]?, _ body: (HostFixture) async throws -> Void) async throws {
        var options: [String: ConfigValue] = ["modules_enabled": .strings("demo_echo"), "demo_echo_ports": .list(.integer(0))]
        if let settings {
            options["network_settings"] = .table(ConfigTable(map: Dictionary(uniqueKeysWithValues: settings.map { (ConfigKey.string($0.key), $0.value) })))
        }
        try await HostFixture.running(modules: ["demo_echo": Self.echo], options: options, body)
    }

    /// Connects, makes sure the server has accepted (an echo), and reads an option of its end.
    private func serverSideOption(_ fixture: HostFixture, level: Int32, name: Int32) throws -> Int32? {
        let client = try fixture.connect(to: "demo_echo")
        try client.send("ping\n")
        #expect(try client.readLine() == "ping")
        let fd = try #require(SocketInspection.acceptedSocket(serverPort: try fixture.port(of: "demo_echo"), clientPort: client.localPort))
        return SocketInspection.option(fd, level: level, name: name)
    }

    @Test("tcp_nodelay: accepted connections have TCP_NODELAY unless it is false", arguments: [
        (nil, 1), (true, 1), (false, 0),
    ] as [(Bool?, Int32)])
    func tcpNoDelay(setting: Bool?, expected: Int32) async throws {
        try await withEcho(setting.map { ["tcp_nodelay": .boolean($0)] }) { fixture in
            let value = try serverSideOption(fixture, level: Int32(IPPROTO_TCP), name: TCP_NODELAY)
            #expect(value.map { $0 != 0 ? 1 : 0 } == expected)
        }
    }

    @Test("tcp_keepalive: accepted connections have SO_KEEPALIVE only when it is true", arguments: [
        (nil, 0), (false, 0), (true, 1),
    ] as [(Bool?, Int32)])
    func tcpKeepalive(setting: Bool?, expected: Int32) async throws {
        try await withEcho(setting.map { ["tcp_keepalive": .boolean($0)] }) { fixture in
            let value = try serverSideOption(fixture, level: SOL_SOCKET, name: SO_KEEPALIVE)
            #expect(value.map { $0 != 0 ? 1 : 0 } == expected)
        }
    }

    @Test("tcp_backlog: the listening socket's backlog, 1024 unless set", arguments: [
        (nil, 1024), (37, 37),
    ] as [(Int?, Int)])
    func tcpBacklog(setting: Int?, expected: Int) async throws {
        try await withEcho(setting.map { ["tcp_backlog": .integer($0)] }) { fixture in
            let backlogs = try SocketInspection.listenBacklogs(port: try fixture.port(of: "demo_echo"))
            #expect(backlogs == [expected])
        }
    }
}

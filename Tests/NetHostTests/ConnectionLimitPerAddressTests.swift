#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOCore
import NIOEmbedded
import NetHostTestSupport
@testable import NetHostConfig
import Testing
@testable import NetHostCore

/// `max_connections_per_ip` on the ports services listen on themselves, and
/// `max_connections` kept below the open file limit.
@Suite("Connection limits per address")
struct ConnectionLimitPerAddressTests {
    static func connection(from ip: String, on loop: EmbeddedEventLoop) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel(loop: loop)
        try channel.connect(to: SocketAddress(ipAddress: ip, port: 40000)).wait()
        return channel
    }

    @Test("one address gets max_connections_per_ip connections, the next is refused and logged; other addresses are served")
    func capPerAddress() throws {
        let loop = EmbeddedEventLoop()
        defer { try? loop.syncShutdownGracefully() }
        let logs = LogCapture()
        let limiter = ConnectionLimiter(maximum: 100, maximumPerAddress: 3, logger: Logger(label: "t", factory: logs.handler(label:)))
        let held = try (0 ..< 3).map { _ in try Self.connection(from: "198.51.100.7", on: loop) }
        for channel in held { #expect(limiter.admit(channel, perAddress: true)) }
        let fourth = try Self.connection(from: "198.51.100.7", on: loop)
        #expect(!limiter.admit(fourth, perAddress: true))
        #expect(!fourth.isActive)
        #expect(logs.contains("max_connections_per_ip (3) reached: refused a connection from this address peer=198.51.100.7"))
        let other = try Self.connection(from: "2001:db8::7", on: loop)
        #expect(limiter.admit(other, perAddress: true))
        #expect(limiter.openConnections == 4)

        _ = try held[0].close().wait()
        loop.run()
        #expect(try limiter.openConnections(from: SocketAddress(ipAddress: "198.51.100.7", port: 1)) == 2)
        let again = try Self.connection(from: "198.51.100.7", on: loop)
        #expect(limiter.admit(again, perAddress: true), "a closed connection frees its address's slot")
        #expect(try limiter.openConnections(from: SocketAddress(ipAddress: "198.51.100.7", port: 1)) == 3)
        for channel in held.dropFirst() + [again, other] { _ = try channel.close().wait() }
        loop.run()
        #expect(try limiter.openConnections(from: SocketAddress(ipAddress: "198.51.100.7", port: 1)) == 0)
        #expect(limiter.openConnections == 0)
    }

    @Test("a PROXY port's connections (all from the load balancer) are not counted per address")
    func proxyPortsAreNotCountedPerAddress() throws {
        let loop = EmbeddedEventLoop()
        defer { try? loop.syncShutdownGracefully() }
        let limiter = ConnectionLimiter(maximum: 100, maximumPerAddress: 2, logger: Logger(label: "t") { _ in SwiftLogNoOpLogHandler() })
        let channels = try (0 ..< 5).map { _ in try Self.connection(from: "127.0.0.1", on: loop) }
        for channel in channels { #expect(limiter.admit(channel, perAddress: false)) }
        for channel in channels { _ = try channel.close().wait() }
    }

    @Test("max_connections_per_ip is read from network_settings and refused when not a count")
    func readFromNetworkSettings() throws {
        var problems: [NetworkSettings.Problem] = []
        let settings = NetworkSettings(from: ConfigTable(map: [.string("max_connections_per_ip"): .integer(20)]), problems: &problems)
        #expect(problems.isEmpty)
        #expect(settings.maxConnectionsPerIP == 20)
        _ = NetworkSettings(from: ConfigTable(map: [.string("max_connections_per_ip"): .integer(0)]), problems: &problems)
        #expect(problems.map(\.description) == ["network_settings.max_connections_per_ip: expected a whole number of at least 1"])
    }

    @Test("max_connections is kept below the open file limit, less what is open and a reserve", arguments: [
        (1024, 100_000, 960), (512, 100_000, 480), (64, 100_000, 28), (20_000, 100_000, 18_956),
        (1_048_576, 100_000, 100_000), (1024, 500, 500),
    ])
    func fittedToDescriptors(limit: Int, configured: Int, expected: Int) {
        var settings = NetworkSettings()
        settings.maxConnections = configured
        let inUse = limit == 1024 || limit == 512 ? 0 : 20
        let (fitted, lowered) = settings.fittingConnections(toDescriptors: limit, inUse: inUse)
        #expect(fitted.maxConnections == expected)
        #expect(lowered == (expected == configured ? nil : configured))
    }

    @Test("the descriptors open now are counted")
    func descriptorsInUse() throws {
        // The other tests of the process open and close descriptors meanwhile (a CI run
        // saw one more): of a few tries, one must see exactly the five opened here.
        var differences: [Int] = []
        for _ in 0 ..< 5 {
            let before = DescriptorLimit.inUse
            let extra = (0 ..< 5).map { _ in open("/dev/null", O_RDONLY) }
            differences.append(DescriptorLimit.inUse - before)
            for fd in extra { close(fd) }
            if differences.last == 5 { break }
        }
        #expect(differences.contains(5), "\(differences)")
    }
}

import Foundation
import SocketTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension InteropTests {
    /// Issue 16, item 5: the `agent_check` module read by a real HAProxy. What HAProxy
    /// believes is read from its own stats socket (`show stat`): the weight it gives
    /// the server, its state, and how many sessions it sent there.
    @Suite("HAProxy agent check")
    struct AgentCheck {
        /// No `check` here: a health check's connection would be counted as open
        /// while it lasts, and the weights are compared exactly.
        static let serverDefaults = ["send-proxy-v2", "weight 100", "agent-check", "agent-inter 100ms"]
        /// Long idle timeouts: held connections must stay open however slowly a loaded
        /// machine (a sanitizer run) gets through the steps; a 30 s timeout once closed
        /// the first ten mid-test and the weight went back up.
        static let defaults = ["timeout connect 2s", "timeout client 5m", "timeout server 5m"]

        @Test("the weight HAProxy gives an instance follows the connections open on it, against max_connections")
        func weightFollowsLoad() async throws {
            let member = try FleetMember(name: "n1", maxConnections: 20)
            let nethost = try await member.start()
            defer { nethost.stop() }
            let haproxy = try await FleetHAProxy.start(
                members: [member], backends: [.init(service: .echo)], serverDefaults: Self.serverDefaults, defaults: Self.defaults)
            defer { haproxy.stop() }
            let server = "echo/n1"
            try await haproxy.stats.waitFor(server, "weight 100") { $0.weight == 100 }

            var held: [TestClient] = []
            func hold(until count: Int) throws {
                while held.count < count {
                    let client = try TestClient(connectingTo: "127.0.0.1", port: haproxy.port(.echo))
                    #expect(client.echoes("held \(held.count)"))
                    held.append(client)
                }
            }
            // 10 of 20 open: half the capacity left, so half the weight.
            try hold(until: 10)
            let half = try await haproxy.stats.waitFor(server, "weight 50") { $0.weight == 50 }
            #expect(half["scur"] == "10", "\(half)")
            // 15 of 20: a quarter.
            try hold(until: 15)
            try await haproxy.stats.waitFor(server, "weight 25") { $0.weight == 25 }
            // All closed: the whole weight again.
            for client in held { client.close() }
            held.removeAll()
            let idle = try await haproxy.stats.waitFor(server, "weight 100 again") { $0.weight == 100 }
            #expect(idle.status == "no check", "\(idle)")
            #expect(!nethost.log.contains("refused"), "\(tail(nethost.log))")
        }

        @Test("an operator's state file takes the instance out as maint, down or drain; removing it brings it back")
        func operatorStateFile() async throws {
            let folder = try TemporaryDirectory(prefix: "agent-state")
            let stateFile = folder.file("agent-state")
            let member = try FleetMember(name: "n1", stateFile: stateFile)
            let nethost = try await member.start()
            defer { nethost.stop() }
            let haproxy = try await FleetHAProxy.start(
                members: [member], backends: [.init(service: .whoami)], serverDefaults: Self.serverDefaults, defaults: Self.defaults)
            defer { haproxy.stop() }
            let server = "whoami/n1"
            try await haproxy.stats.waitFor(server, "weight 100") { $0.weight == 100 }

            let serving: @Sendable (HAProxyStats.Row) -> Bool = { $0.status == "no check" && $0.weight == 100 }
            // touch: maint.
            _ = FileManager.default.createFile(atPath: stateFile, contents: Data())
            try await haproxy.stats.waitFor(server, "MAINT") { $0.status == "MAINT" }
            try FileManager.default.removeItem(atPath: stateFile)
            try await haproxy.stats.waitFor(server, "serving after maint", serving)
            // down, with the reason HAProxy logs.
            try "down planned reboot\n".write(toFile: stateFile, atomically: true, encoding: .utf8)
            try await haproxy.stats.waitFor(server, "DOWN") { $0.status == "DOWN (agent)" }
            #expect(haproxy.log.contains(#"info: "via agent : down (planned reboot)""#), "\(tail(haproxy.log))")
            try FileManager.default.removeItem(atPath: stateFile)
            try await haproxy.stats.waitFor(server, "serving after down", serving)
            // drain.
            try "drain\n".write(toFile: stateFile, atomically: true, encoding: .utf8)
            try await haproxy.stats.waitFor(server, "DRAIN") { $0.status == "DRAIN (agent)" }
            try FileManager.default.removeItem(atPath: stateFile)
            try await haproxy.stats.waitFor(server, "serving after drain", serving)
            // Served all along by the same process: the operator needed no signal and no restart.
            #expect(nethost.process.isRunning)
        }

        @Test("a stopping instance answers drain while it still listens, and HAProxy sends it no new connection")
        func drainingInstanceGetsNoNewConnections() async throws {
            let staying = try FleetMember(name: "n1")
            // Long enough to look at it while it drains and still listens.
            let leaving = try FleetMember(name: "n2", drainTime: 2.5)
            async let startingStaying = staying.start()
            async let startingLeaving = leaving.start()
            let (first, second) = try await (startingStaying, startingLeaving)
            defer {
                first.stop()
                second.stop()
            }
            let haproxy = try await FleetHAProxy.start(
                members: [staying, leaving], backends: [.init(service: .whoami)],
                serverDefaults: ["send-proxy-v2", "weight 100", "check", "inter 200ms", "rise 1", "fall 2", "agent-check", "agent-inter 100ms"],
                defaults: Self.defaults)
            defer { haproxy.stop() }
            for name in ["whoami/n1", "whoami/n2"] {
                try await haproxy.stats.waitFor(name, "UP, weight 100") { $0.status == "UP" && $0.weight == 100 }
            }
            // Round robin: both get connections while both serve.
            try Self.whoami(10, through: haproxy)
            let before = try haproxy.stats.servers()
            #expect((before["whoami/n1"]?.totalSessions ?? 0) > 0 && (before["whoami/n2"]?.totalSessions ?? 0) > 0, "\(before)")

            second.process.send(signal: SIGTERM)
            let clock = ContinuousClock()
            let sent = clock.now
            let draining = try await haproxy.stats.waitFor("whoami/n2", "DRAIN") { $0.status == "DRAIN (agent)" }
            let noticed = clock.now - sent
            print("agent check: HAProxy showed the stopping instance as DRAIN \(noticed) after SIGTERM (agent-inter 100ms)")
            let staysAt = draining.totalSessions
            let firstBefore = try haproxy.stats.server("whoami/n1").totalSessions

            try Self.whoami(40, through: haproxy)
            let after = try haproxy.stats.servers()
            #expect(after["whoami/n2"]?.totalSessions == staysAt, "the draining instance got new connections: \(after)")
            #expect(after["whoami/n1"]?.totalSessions == firstBefore + 40, "\(after)")
            // Not because its port was closed: it still listens, for the rest of its notice.
            let address = try SocketAddressStorage(host: "127.0.0.1", port: leaving.whoamiPort)
            #expect(isListening(address, ownedBy: second.process.pid), "the instance had closed its port already")
            #expect(second.log.contains("leaving: the agent check answers drain; the ports stay open 2.5 s more"), "\(tail(second.log))")

            // Then it stops by itself, cleanly.
            #expect(try await second.process.waitForExit(timeout: .seconds(15)) == .exited(0), "\(tail(second.log))")
        }

        /// `count` whoami connections through HAProxy, one after another; each must be
        /// served with the client's own address.
        static func whoami(_ count: Int, through haproxy: FleetHAProxy) throws {
            for _ in 0 ..< count {
                let client = try TestClient(connectingTo: "127.0.0.1", port: haproxy.port(.whoami))
                let reply = String(decoding: try client.readToEnd(), as: UTF8.self)
                #expect(reply == "127.0.0.1 \(client.localPort)\n")
                client.close()
            }
        }
    }
}

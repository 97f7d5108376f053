import Foundation
import SocketTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension InteropTests {
    /// Issue 16, item 8: the README's fleet, run. Three NetHost instances behind a
    /// real HAProxy (`send-proxy-v2`, `check`, `agent-check`), an independent client
    /// making whoami connections through it all along, a rolling restart, then one
    /// instance killed with SIGKILL.
    @Suite("A fleet behind HAProxy")
    struct Fleet {
        static let underThreadSanitizer = ProcessInfo.processInfo.environment["TSAN_OPTIONS"] != nil
        /// Between two of the steady client's connections: about 200 a second; fewer
        /// under ThreadSanitizer, where every instance is several times slower and
        /// the race check needs the paths, not the volume.
        static let pause: Duration = underThreadSanitizer ? .milliseconds(25) : .milliseconds(3)

        /// The README's server line options, with the same reasons.
        static let serverDefaults = [
            "send-proxy-v2", "weight 100",
            "check", "inter 300ms", "fastinter 100ms", "downinter 300ms", "rise 1", "fall 2",
            "agent-check", "agent-inter 200ms",
        ]
        static let defaults = [
            "timeout connect 500ms", "timeout client 30s", "timeout server 30s",
            "retries 3", "option redispatch 1",
        ]
        /// How soon after SIGKILL HAProxy must have the instance DOWN: the next check
        /// (`inter`), a second at `fastinter` (`fall 2`), and room for a slow machine.
        static let downWithin: Duration = .milliseconds(300 + 2 * 100) + (underThreadSanitizer ? .seconds(3) : .seconds(1))

        @Test("a rolling restart under steady traffic loses no connection; after SIGKILL only that instance's connections fail, and HAProxy stops sending to it within its check interval")
        func rollingRestartAndKill() async throws {
            let members = try (1 ... 3).map { try FleetMember(name: "n\($0)") }
            let instances = Locked<[String: NetHostFixture]>([:])
            defer { instances.withLock { $0.values.forEach { $0.stop() } } }
            try await withThrowingTaskGroup(of: (String, NetHostFixture).self) { starting in
                for member in members { starting.addTask { (member.name, try await member.start()) } }
                for try await (name, instance) in starting { instances.withLock { $0[name] = instance } }
            }
            let haproxy = try await FleetHAProxy.start(
                members: members, backends: [.init(service: .whoami), .init(service: .echo, logAsap: true)],
                serverDefaults: Self.serverDefaults, defaults: Self.defaults)
            defer { haproxy.stop() }
            try await Self.waitUntilServing(members, haproxy)

            let traffic = SteadyTraffic(port: haproxy.port(.whoami), pause: Self.pause)
            let clock = ContinuousClock()
            let rollingStarted = clock.now

            // The rolling restart: each instance in turn is stopped (SIGTERM), drains, and starts again.
            for member in members {
                let old = try #require(instances.withLock { $0[member.name] })
                // A connection open on it when it is told to stop must be allowed to finish.
                let held = try await Self.holdEchoConnection(on: member.name, through: haproxy)
                old.process.send(signal: SIGTERM)
                try await haproxy.stats.waitFor("whoami/\(member.name)", "DRAIN") { $0.status.hasPrefix("DRAIN") }
                // Past its notice the listeners close; the open connection still works.
                let address = try SocketAddressStorage(host: "127.0.0.1", port: member.whoamiPort)
                _ = try await poll(timeout: .seconds(10)) { isListening(address, ownedBy: old.process.pid) ? nil : true }
                #expect(held.echoes("still here while \(member.name) drains"), "\(member.name): the open connection was cut")
                held.close()
                // With its last connection ended it exits at once, cleanly.
                #expect(try await old.process.waitForExit(timeout: .seconds(10)) == .exited(0), "\(tail(old.log))")
                let restarted = try await member.start()
                instances.withLock { $0[member.name] = restarted }
                try await Self.waitUntilServing([member], haproxy)
            }
            let rolling = (served: traffic.served, failures: traffic.failures, took: clock.now - rollingStarted)
            #expect(rolling.failures.isEmpty, "the rolling restart lost \(rolling.failures.count) connections: \(rolling.failures.prefix(5))")
            #expect(rolling.served > 20, "the steady client made only \(rolling.served) connections")

            // SIGKILL: connections open on the killed instance fail; nothing else does.
            var held: [(client: TestClient, server: String)] = []
            for member in members {
                held.append((try await Self.holdEchoConnection(on: member.name, through: haproxy), member.name))
            }
            let victim = members[1]
            let killed = try #require(instances.withLock { $0[victim.name] })
            killed.process.send(signal: SIGKILL)
            let killedAt = clock.now
            let down = try await haproxy.stats.waitFor("whoami/\(victim.name)", "DOWN") { $0.status.hasPrefix("DOWN") }
            let noticedAfter = clock.now - killedAt
            // From now on HAProxy sends it nothing: the steady client goes on a while.
            let servedAtDown = traffic.served
            _ = try await poll(timeout: .seconds(20)) { traffic.served >= servedAtDown + 50 ? true : nil }
            try await traffic.stop()
            let afterDown = try haproxy.stats.server("whoami/\(victim.name)")
            #expect(afterDown.totalSessions == down.totalSessions, "HAProxy still sent connections to the killed instance: \(down) then \(afterDown)")
            #expect(noticedAfter <= Self.downWithin, "HAProxy marked the killed instance DOWN only after \(noticedAfter)")

            for (client, server) in held {
                if server == victim.name {
                    #expect(!client.echoes("after the kill"), "a connection on the killed instance still echoes")
                } else {
                    #expect(client.echoes("after the kill"), "a connection on \(server) failed when \(victim.name) was killed")
                }
                client.close()
            }
            // The steady client's failures, if any, were connections open on the killed
            // instance: HAProxy logged them there, and not as refused (`SC`, a connection
            // that was never open, which `retries` and `option redispatch` send elsewhere).
            let failures = Array(traffic.failures.dropFirst(rolling.failures.count))
            let sessions = try await Self.sessions(of: failures, in: haproxy)
            for failure in failures {
                let session = failure.localPort.flatMap { sessions[$0] }
                #expect(session?["server"] == victim.name, "\(failure) failed on \(session?["server"] ?? "no server HAProxy logged")")
                #expect(session?["state"]?.hasPrefix("SC") == false, "\(failure): HAProxy's session \(session ?? [:])")
            }
            let redispatched = haproxy.sessions.values.filter { $0["retries"]?.hasPrefix("+") == true }.count
            print(
                "fleet: rolling restart of 3 took \(rolling.took), \(rolling.served) connections served, \(rolling.failures.count) failed; "
                    + "SIGKILL: HAProxy had it DOWN after \(noticedAfter), \(failures.count) client connections failed, "
                    + "\(redispatched) redispatched; \(traffic.served) served in all")
        }

        /// Waits until every member is UP with its whole weight in both backends.
        static func waitUntilServing(_ members: [FleetMember], _ haproxy: FleetHAProxy) async throws {
            for member in members {
                for backend in ["whoami", "echo"] {
                    try await haproxy.stats.waitFor("\(backend)/\(member.name)", "UP with weight 100") {
                        $0.status == "UP" && $0.weight == 100
                    }
                }
            }
        }

        /// An echo connection through HAProxy that HAProxy sent to `server` (its
        /// `logasap` line says where each went); others opened on the way are closed.
        static func holdEchoConnection(on server: String, through haproxy: FleetHAProxy) async throws -> TestClient {
            for _ in 0 ..< 12 {
                let client = try TestClient(connectingTo: "127.0.0.1", port: haproxy.port(.echo))
                guard client.echoes("hello") else { throw FixtureError("an echo connection through HAProxy failed") }
                let port = client.localPort
                let went = try await poll(timeout: .seconds(5)) { haproxy.sessions[port]?["server"] }
                if went == server { return client }
                client.close()
            }
            throw FixtureError("HAProxy sent no echo connection to \(server); its log:\n\(tail(haproxy.log))")
        }

        /// HAProxy's session lines for the failed connections (logged when each ended).
        static func sessions(of failures: [SteadyTraffic.Failure], in haproxy: FleetHAProxy) async throws -> [Int: [String: String]] {
            let ports = failures.compactMap(\.localPort)
            return try await poll(timeout: .seconds(5)) { () -> [Int: [String: String]]? in
                let sessions = haproxy.sessions
                return ports.allSatisfy { sessions[$0] != nil } ? sessions : nil
            } ?? haproxy.sessions
        }
    }
}

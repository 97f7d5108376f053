import Foundation
import SocketTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Restarts and upgrades without a lost connection. `nethost run --takeover`
/// receives the running NetHost's listening sockets over its control socket and
/// adopts them; the old one stops accepting and drains. A client of its own
/// (`scripts/continuity-client`, independent of NetHost's code) opens PROXY v2
/// connections to demo_whoami behind net_proxy at a steady rate throughout and checks
/// every answer. And systemd's socket activation: the sockets systemd passes are
/// adopted, so a connection that waited for NetHost to start is served.
@Suite("CommandLine: takeover and socket activation")
struct CommandLineTakeoverTests {
    /// Under ThreadSanitizer the processes are slow; the paths matter, not the volume.
    static let underTSan = ProcessInfo.processInfo.environment["TSAN_OPTIONS"] != nil
    static let rate = underTSan ? 50 : 200

    static func config(port: Int, extra: String = "") -> String {
        """
        modules_enabled = { "net_proxy", "demo_whoami" }
        proxy_port_mappings = { [\(port)] = "demo_whoami" }
        proxy_trusted_proxies = { "127.0.0.1" }
        interfaces = { "127.0.0.1" }
        demo_whoami_ports = {}
        pidfile = "run/nethost.pid"
        shutdown_timeout = 5
        \(extra)
        """
    }

    /// The continuity client on `port`, printing its counts every 0.2 s.
    static func startClient(port: Int) throws -> ManagedProcess {
        try ManagedProcess(
            executable: CommandLineWorkspace.packageRoot + "/scripts/continuity-client",
            arguments: ["--port", "\(port)", "--rate", "\(rate)", "--progress", "0.2", "--timeout", underTSan ? "20" : "10"],
            name: "continuity-client"
        )
    }

    /// A count from the client's last line starting with `prefix` ("progress", "total").
    static func count(_ name: String, in client: ManagedProcess, line prefix: String = "progress") -> Int? {
        guard let line = client.standardOutput.split(separator: "\n").last(where: { $0.hasPrefix(prefix + " ") }) else { return nil }
        for field in line.split(separator: " ") where field.hasPrefix(name + "=") {
            return Int(field.dropFirst(name.count + 1))
        }
        return nil
    }

    /// Waits until the client has had `more` connections served since `served`.
    static func waitForServed(after served: Int, more: Int = 20, by client: ManagedProcess) async throws -> Int {
        let now = try await poll(timeout: .seconds(underTSan ? 60 : 20)) { () -> Int? in
            guard let now = count("served", in: client), now >= served + more else { return nil }
            return now
        }
        return try #require(now, "no connection served after \(served); client:\n\(tail(client.output))")
    }

    /// The inodes of the TCP sockets listening on `port` that process `pid` holds
    /// (from /proc/net/tcp and /proc/PID/fd). The same inodes after a takeover mean
    /// the same sockets, queues included: nothing was closed and bound anew.
    static func listeningSockets(of pid: pid_t, port: Int) -> Set<Int> {
        let listeners = TCPListeners.read(ownedBy: pid)?.entries ?? []
        return Set(listeners.filter { !$0.ipv6Table && $0.port == port }.map(\.inode))
    }

    /// Starts `binary run --takeover` and waits until it has taken over and the old process has exited 0.
    static func takeOver(
        from old: ManagedProcess, binary: String, config: String, in workspace: CommandLineWorkspace
    ) async throws -> ManagedProcess {
        let new = try ManagedProcess(
            executable: binary, arguments: ["run", "--takeover", "--config", config],
            environment: ["NETHOST_MODULES": CommandLineWorkspace.packageRoot + "/modules"],
            workingDirectory: workspace.root, name: "nethost"
        )
        do {
            try await new.waitForLogLine(containing: "takeover: done", timeout: .seconds(underTSan ? 60 : 20))
        } catch {
            throw FixtureError("\(error)\nthe process taken over from:\n\(tail(old.output))")
        }
        #expect(try await old.waitForExit(timeout: .seconds(30)) == .exited(0), "\(old.output)")
        #expect(old.output.contains("took over the listening sockets: this one stops accepting and drains"), "\(old.output)")
        return new
    }

    @Test("three takeovers and an upgrade to another binary under steady new PROXY connections: every one served, none refused, reset or lost")
    func takeoversLoseNothing() async throws {
        let workspace = try CommandLineWorkspace(prefix: "takeover")
        let port = try FreePort.allocate()
        try FileManager.default.createDirectory(atPath: workspace.path("run"), withIntermediateDirectories: true)
        let config = try workspace.write(Self.config(port: port), to: "prosody.cfg.lua")
        // The upgrade: the same build copied elsewhere stands in for a newer binary.
        let upgrade = workspace.path("bin/nethost-next")
        try FileManager.default.createDirectory(atPath: workspace.path("bin"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: try NetHostFixture.binaryPath(), toPath: upgrade)

        var nethost = try await workspace.startListening(["--config", config], on: [("127.0.0.1", port)])
        defer { nethost.stop() }
        try await nethost.waitForLogLine(containing: "control socket \(workspace.root)/run/nethost.sock")
        let client = try Self.startClient(port: port)
        defer { client.stop() }
        var served = try await Self.waitForServed(after: 0, by: client)
        let sockets = Self.listeningSockets(of: nethost.pid, port: port)
        #expect(!sockets.isEmpty)

        for binary in [try NetHostFixture.binaryPath(), try NetHostFixture.binaryPath(), try NetHostFixture.binaryPath(), upgrade] {
            let old = nethost
            nethost = try await Self.takeOver(from: old, binary: binary, config: config, in: workspace)
            #expect(workspace.contents(of: "run/nethost.pid") == "\(nethost.pid)\n")
            // The very sockets the first process bound, each still open: none closed, none bound anew.
            #expect(Self.listeningSockets(of: nethost.pid, port: port) == sockets)
            // Served by the new process: the old one has exited.
            served = try await Self.waitForServed(after: served, by: client)
        }
        #expect(nethost.executablePath == upgrade)

        client.send(signal: SIGINT)
        let ended = try await client.waitForExit(timeout: .seconds(30))
        for failure in ["refused", "reset", "timeout", "wrong"] {
            #expect(Self.count(failure, in: client, line: "total") == 0, "\(failure); client:\n\(tail(client.output))")
        }
        #expect((Self.count("served", in: client, line: "total") ?? 0) > served - 1)
        #expect(ended == .exited(0), "\(client.output)")
    }

    @Test("a takeover that fails (its config does not load, it cannot open its ports, or nothing answers on the control socket) leaves the running NetHost serving")
    func failedTakeoverChangesNothing() async throws {
        let workspace = try CommandLineWorkspace(prefix: "takeover-fails")
        let port = try FreePort.allocate()
        let control = "control_socket = \"nethost.sock\""
        let config = try workspace.write(Self.config(port: port, extra: control).replacingOccurrences(of: "run/", with: ""), to: "prosody.cfg.lua")
        // Valid Lua, but net_proxy refuses it when it loads: after the config is read, before any socket moves.
        let broken = try workspace.write(
            Self.config(port: port, extra: control + "\nproxy_trusted_proxies = { \"not an address\" }").replacingOccurrences(of: "run/", with: ""),
            to: "broken.cfg.lua"
        )
        let nethost = try await workspace.startListening(["--config", config], on: [("127.0.0.1", port)])
        defer { nethost.stop() }
        try await nethost.waitForLogLine(containing: "control socket")

        let failed = try await workspace.run(["run", "--takeover", "--config", broken])
        #expect(failed.termination == .exited(1), "\(failed.output)")
        #expect(failed.output.contains("proxy_trusted_proxies"), "\(failed.output)")
        #expect(nethost.isRunning)
        #expect(!nethost.output.contains("takeover asked for"), "\(nethost.output)")

        // Takes the sockets, then cannot start: the port its config wants is held
        // (and the old one's is not in it, so it closes its copy of that socket).
        let busy = try FreePort.allocate()
        let held = HeldAddresses([try SocketAddressStorage(host: "127.0.0.1", port: busy)])
        #expect(held.count == 1)
        let elsewhereToo = try workspace.write(
            Self.config(port: busy, extra: control).replacingOccurrences(of: "run/", with: "").replacingOccurrences(of: "nethost.pid", with: "other.pid"),
            to: "busy.cfg.lua"
        )
        let cannotStart = try await workspace.run(["run", "--takeover", "--config", elsewhereToo])
        withExtendedLifetime(held) {}
        #expect(cannotStart.termination == .exited(1), "\(cannotStart.output)")
        #expect(cannotStart.output.contains("takeover: received 2 listening socket(s)") || cannotStart.output.contains("takeover: received 1 listening socket(s)"), "\(cannotStart.output)")
        #expect(cannotStart.output.contains("no port could be opened"), "\(cannotStart.output)")
        try await nethost.waitForLogLine(containing: "takeover abandoned, still serving")

        // Nothing on the control socket that another config names.
        let elsewhere = try workspace.write(Self.config(port: port, extra: "control_socket = \"nobody.sock\""), to: "elsewhere.cfg.lua")
        let alone = try await workspace.run(["run", "--takeover", "--config", elsewhere])
        #expect(alone.termination == .exited(1), "\(alone.output)")
        #expect(alone.output.contains("--takeover: connect to \(workspace.root)/nobody.sock failed"), "\(alone.output)")

        // The old process still answers, and can still be taken over.
        let proxied = try TestClient(connectingTo: "127.0.0.1", port: port)
        try proxied.send("PROXY TCP4 203.0.113.9 192.0.2.1 4444 \(port)\r\n")
        #expect(try proxied.read(until: "\n") == "203.0.113.9 4444\n")
        let next = try await Self.takeOver(from: nethost, binary: try NetHostFixture.binaryPath(), config: config, in: workspace)
        defer { next.stop() }
        let again = try TestClient(connectingTo: "127.0.0.1", port: port)
        try again.send("PROXY TCP4 203.0.113.10 192.0.2.1 4445 \(port)\r\n")
        #expect(try again.read(until: "\n") == "203.0.113.10 4445\n")
    }

    @Test("socket activation: NetHost adopts the socket systemd passes and serves the connection that started it; a socket for no configured port is closed")
    func systemdSocketActivation() async throws {
        let workspace = try CommandLineWorkspace(prefix: "socket-activation")
        let port = try FreePort.allocate()
        let unused = try FreePort.allocate()
        let config = try workspace.write(Self.config(port: port).replacingOccurrences(of: "pidfile = \"run/nethost.pid\"", with: ""), to: "prosody.cfg.lua")
        // systemd-socket-activate binds both ports, and execs nethost with them
        // (LISTEN_FDS=2) when the first connection arrives.
        let activator = try ManagedProcess(
            executable: "systemd-socket-activate",
            arguments: ["-l", "127.0.0.1:\(port)", "-l", "127.0.0.1:\(unused)", try NetHostFixture.binaryPath(), "run", "--config", config],
            workingDirectory: workspace.root, name: "nethost"
        )
        defer { activator.stop() }
        try await waitForPort(host: "127.0.0.1", port: port) { activator.checkTermination().map { "\($0): \(activator.output)" } }

        // Sent before NetHost runs: it waits in the socket's queue.
        let first = try TestClient(connectingTo: "127.0.0.1", port: port)
        try first.send("PROXY TCP4 203.0.113.9 192.0.2.1 4444 \(port)\r\n")
        #expect(try first.read(until: "\n", timeout: .seconds(Self.underTSan ? 60 : 20)) == "203.0.113.9 4444\n", "\(activator.output)")
        // Logged by a thread of its own, maybe after the answer went out.
        try await activator.waitForLogLine(containing: "listening for service 'proxy' on 127.0.0.1:\(port) through 1 inherited socket(s)")
        #expect(activator.output.contains("socket activation: 2 listening socket(s) from systemd"), "\(activator.output)")
        #expect(activator.output.contains("inherited listening socket 127.0.0.1:\(unused) is for no port of this config: closing it"), "\(activator.output)")
        let address = try SocketAddressStorage(host: "127.0.0.1", port: unused)
        #expect(!isListening(address), "the socket for no configured port still listens")
    }
}

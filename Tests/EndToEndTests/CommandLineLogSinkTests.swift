import Foundation
import SocketTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// A log sink that cannot be written does not stall the server (README,
// "Configuration", `log`): lines go through a bounded queue to a writer thread.

@Suite("CommandLine: a log sink that cannot be written")
struct CommandLineLogSinkTests {
    /// Echoes a few lines, each on a connection of its own (each connection logs
    /// debug lines for the sink).
    private func echo(on port: Int, times: Int) throws {
        for index in 0 ..< times {
            let client = try TestClient(connectingTo: "127.0.0.1", port: port)
            defer { client.close() }
            try client.send("hello \(index)\n")
            #expect(try client.read(until: "\n") == "hello \(index)\n")
        }
    }

    /// Lines are written by a thread of their own, so the process waits for it
    /// before it exits: the last lines of a graceful stop reach the file and the
    /// console.
    @Test
    func theLastLinesAreWrittenBeforeTheProcessExits() async throws {
        let workspace = try CommandLineWorkspace(prefix: "log-exit")
        let port = try FreePort.allocate()
        let config = try workspace.write(
            """
            modules_enabled = { "demo_echo" }
            interfaces = { "127.0.0.1" }
            demo_echo_ports = { \(port) }
            log = { info = "nethost.log", "*console" }

            """,
            to: "prosody.cfg.lua")
        let nethost = try await workspace.startListening(["--config", config], on: [("127.0.0.1", port)])
        defer { nethost.stop() }
        try echo(on: port, times: 1)
        nethost.send(signal: SIGTERM)
        #expect(try await nethost.waitForExit(timeout: .seconds(15)) == .exited(0), "\(nethost.output)")
        let file = workspace.contents(of: "nethost.log") ?? ""
        #expect(file.split(separator: "\n").last?.hasSuffix(" info [nethost] stopped") == true, "\(file)")
        #expect(nethost.standardError.split(separator: "\n").last?.hasSuffix(" info [nethost] stopped") == true, "\(nethost.output)")
    }

    /// `/dev/full` stands for a full file system: every write fails with ENOSPC.
    /// The echo service answers, and standard error says once what is wrong.
    @Test
    func aFullFileSystemIsReportedOnceAndTheServerServes() async throws {
        let workspace = try CommandLineWorkspace(prefix: "log-full")
        let port = try FreePort.allocate()
        let config = try workspace.write(
            """
            modules_enabled = { "demo_echo" }
            interfaces = { "127.0.0.1" }
            demo_echo_ports = { \(port) }
            log = { { to = "file", filename = "/dev/full", levels = { min = "debug" } } }

            """,
            to: "prosody.cfg.lua")
        let nethost = try await workspace.startListening(["--config", config], on: [("127.0.0.1", port)])
        defer { nethost.stop() }

        let reports = { nethost.standardError.split(separator: "\n").filter { $0.contains("/dev/full") } }
        // The start-up lines already failed.
        let first = try await poll(timeout: .seconds(10)) { reports().first }
        let report = try #require(first, "nothing on stderr about /dev/full: \(nethost.output)")
        #expect(report.contains(" error [nethost] log: cannot write to /dev/full: No space left on device (ENOSPC)"), "\(report)")

        try echo(on: port, times: 5)
        #expect(nethost.stop() == .exited(0))
        // Once it has exited, its output is complete: the many failed lines made one report.
        #expect(reports().count == 1, "\(nethost.standardError)")
    }

    /// A FIFO that no one reads: opening it for writing would wait for a reader, and
    /// once opened, writing to it would wait. The echo service answers all the same,
    /// and a graceful stop waits for the log only a bounded time (2 s).
    @Test
    func aFIFONoOneReadsDoesNotStallTheServer() async throws {
        let workspace = try CommandLineWorkspace(prefix: "log-fifo")
        let port = try FreePort.allocate()
        let fifo = workspace.path("nobody-reads.fifo")
        try #require(mkfifo(fifo, 0o600) == 0)
        let config = try workspace.write(
            """
            modules_enabled = { "demo_echo" }
            interfaces = { "127.0.0.1" }
            demo_echo_ports = { \(port) }
            log = { { to = "file", filename = "\(fifo)", levels = { min = "debug" } } }

            """,
            to: "prosody.cfg.lua")
        let nethost = try await workspace.startListening(["--config", config], on: [("127.0.0.1", port)])
        defer { nethost.stop() }

        try echo(on: port, times: 5)
        nethost.send(signal: SIGTERM)
        #expect(try await nethost.waitForExit(timeout: .seconds(15)) == .exited(0), "\(nethost.output)")
    }
}

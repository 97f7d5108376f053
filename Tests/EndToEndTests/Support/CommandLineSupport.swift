import Foundation
import SocketTestSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A temporary folder laid out the way a user lays out NetHost's files (a config,
/// files it includes, a plugins folder, maybe all under `etc/`), and the real
/// `nethost` binary started or run to completion in it.
///
/// Unlike ``NetHostFixture`` it keeps stdout and stderr apart, lets the test choose
/// the working directory (to tell "relative to the config" from "relative to the
/// current directory") and can watch ports while a short run lasts.
final class CommandLineWorkspace: Sendable {
    /// The workspace folder (absolute).
    let root: String
    private let directory: TemporaryDirectory

    init(prefix: String = "cli") throws {
        self.directory = try TemporaryDirectory(prefix: prefix)
        self.root = self.directory.path
    }

    /// The absolute path of `name` (relative to the workspace).
    func path(_ name: String) -> String {
        self.directory.file(name)
    }

    /// Writes `text` to `name` (creating folders) and returns the absolute path.
    @discardableResult
    func write(_ text: String, to name: String) throws -> String {
        try self.directory.write(text, to: name)
    }

    /// The text of `name`, or nil if there is no such file.
    func contents(of name: String) -> String? {
        FileManager.default.contents(atPath: self.path(name)).map { String(decoding: $0, as: UTF8.self) }
    }

    func exists(_ name: String) -> Bool {
        FileManager.default.fileExists(atPath: self.path(name))
    }

    /// Starts `nethost arguments...` in `workingDirectory` (the workspace by default).
    /// Its output goes to a folder of its own, not into the workspace.
    func start(_ arguments: [String], workingDirectory: String? = nil) throws -> ManagedProcess {
        try ManagedProcess(
            executable: try NetHostFixture.binaryPath(),
            arguments: arguments,
            workingDirectory: workingDirectory ?? self.root,
            name: "nethost"
        )
    }

    /// Starts nethost and waits until it listens on every one of `listening`.
    /// Throws with its output if it exits first or does not listen in time (it is stopped then).
    func startListening(
        _ arguments: [String],
        on listening: [(host: String, port: Int)],
        workingDirectory: String? = nil,
        timeout: Duration = .seconds(15)
    ) async throws -> ManagedProcess {
        let process = try self.start(arguments, workingDirectory: workingDirectory)
        do {
            for address in listening {
                try await waitForPort(host: address.host, port: address.port, timeout: timeout) {
                    process.checkTermination().map { "nethost \($0)" }
                }
            }
        } catch {
            process.stop()
            throw FixtureError("nethost did not start: \(error)\n  output:\n\(tail(process.output))")
        }
        return process
    }

    /// How a run to completion went.
    struct Completed: Sendable {
        var termination: ManagedProcess.Termination
        var standardOutput: String
        var standardError: String
        /// The watched addresses it listened on or tried to, as `host:port` (see `run`).
        var listenedOn: [String]

        /// The lines of stderr that are not empty.
        var errorLines: [String] {
            self.standardError.split(separator: "\n").map(String.init).filter { !$0.isEmpty }
        }

        /// Both streams, for failure messages.
        var output: String {
            "status: \(self.termination)\n  stdout:\n\(tail(self.standardOutput))\n  stderr:\n\(tail(self.standardError))"
        }
    }

    /// Runs `nethost arguments...` to completion and says which of `watching` it
    /// listened on or tried to. Kills it and throws if it runs past `timeout`.
    ///
    /// Sampling the kernel's socket tables would miss a port open for less than the
    /// sampling interval. So the test holds each watched address itself while nethost
    /// runs (bound, not listening, without SO_REUSEADDR or SO_REUSEPORT): nethost
    /// cannot bind it, and logs every port it could not open ("could not listen on
    /// port P of interface I ...: the address is already in use ..."). Once it has
    /// exited its output is complete, so a port its output does not name is one it
    /// never tried. An address already taken by someone else cannot be held; nethost
    /// cannot bind that one either, unless it is shared with SO_REUSEPORT, which the
    /// sampling (of nethost's own sockets) is still there for.
    func run(
        _ arguments: [String],
        workingDirectory: String? = nil,
        watching: [(host: String, port: Int)] = [],
        timeout: Duration = .seconds(15)
    ) async throws -> Completed {
        let addresses = try watching.map { try SocketAddressStorage(host: $0.host, port: $0.port) }
        let held = HeldAddresses(addresses)
        let process = try self.start(arguments, workingDirectory: workingDirectory)
        defer { process.stop() }
        var seen: [String] = []
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while true {
            let unseen = addresses.filter { !seen.contains($0.description) }
            if !unseen.isEmpty, let listeners = TCPListeners.read(ownedBy: process.pid) {
                for address in unseen where listeners.contains(address) { seen.append(address.description) }
            }
            if let termination = process.checkTermination() {
                withExtendedLifetime(held) {}
                // A bind refused because the test holds the address, as nethost logs it.
                let refusals = process.output.split(separator: "\n").filter { $0.contains("the address is already in use") }
                for address in addresses where !seen.contains(address.description)
                    && refusals.contains(where: { $0.contains("could not listen on port \(address.port) ") }) {
                    seen.append(address.description)
                }
                return Completed(
                    termination: termination,
                    standardOutput: process.standardOutput,
                    standardError: process.standardError,
                    listenedOn: seen
                )
            }
            if clock.now >= deadline {
                throw FixtureError("nethost still running after \(timeout); its output:\n\(tail(process.output))")
            }
            try await Task.sleep(for: .milliseconds(2))
        }
    }
}

/// TCP sockets bound to addresses (not listening, without SO_REUSEADDR or
/// SO_REUSEPORT) so that no other socket can bind them while this lives.
/// An address that cannot be bound (someone else has it) is skipped.
final class HeldAddresses: Sendable {
    private let descriptors: [Int32]

    init(_ addresses: [SocketAddressStorage]) {
        self.descriptors = addresses.compactMap { address in
            let fd = socket(address.family, streamSocketType, 0)
            guard fd >= 0 else { return nil }
            if address.family == AF_INET6 {
                var on: Int32 = 1
                setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &on, socklen_t(MemoryLayout<Int32>.size))
            }
            guard address.withSockAddr({ bind(fd, $0, $1) }) == 0 else {
                close(fd)
                return nil
            }
            return fd
        }
    }

    /// How many of the addresses are held.
    var count: Int { self.descriptors.count }

    deinit {
        for fd in self.descriptors { close(fd) }
    }
}

extension CommandLineWorkspace {

    /// The loopback addresses NetHost is told to listen on in these tests.
    static let loopbacks = ["127.0.0.1", "::1"]

    /// Each of `ports` on both loopback addresses.
    static func onLoopbacks(_ ports: Int...) -> [(host: String, port: Int)] {
        ports.flatMap { port in loopbacks.map { (host: $0, port: port) } }
    }

    /// The package's root folder, found from this source file.
    static let packageRoot: String = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // Support
        .deletingLastPathComponent()  // EndToEndTests
        .deletingLastPathComponent()  // Tests
        .deletingLastPathComponent()
        .path
}

import Foundation
import SocketTestSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The real `nethost` binary, built with the tests, run on a config and Lua modules
/// written to a temporary directory.
///
/// The binary is found next to the test executable (SwiftPM puts both in the same
/// build folder, whatever `--scratch-path` was used); see ``binaryPath()``.
///
///     let nethost = try await NetHostFixture.start(
///         config: { paths in """
///             plugin_paths = { "\(paths.modulesDirectory)" }
///             modules_enabled = { "net_proxy", "demo_echo" }
///             proxy_port_mappings = { [\(port)] = "demo_echo" }
///             """ },
///         modules: ["mod_demo_echo.lua": echoSource],
///         readiness: [.listening(host: "127.0.0.1", port: port)])
///     defer { nethost.stop() }
final class NetHostFixture: Sendable {
    /// Where the fixture's files are.
    struct Paths: Sendable {
        /// The temporary directory holding everything below.
        let directory: String
        /// `<directory>/prosody.cfg.lua`.
        let configFile: String
        /// `<directory>/modules`, where the `modules` are written.
        let modulesDirectory: String
    }

    /// When ``start(config:modules:arguments:environment:launcher:readiness:timeout:)`` returns.
    enum Readiness: Sendable {
        /// Once a line of its output contains this text.
        case logLine(String)
        /// Once something listens on this address (TCP).
        case listening(host: String, port: Int)
    }

    let paths: Paths
    let process: ManagedProcess
    private let directory: TemporaryDirectory

    private init(paths: Paths, process: ManagedProcess, directory: TemporaryDirectory) {
        self.paths = paths
        self.process = process
        self.directory = directory
    }

    /// Writes `config` to `prosody.cfg.lua` and each of `modules` (file name → Lua
    /// source) to the modules folder, starts `nethost` with `arguments` (by default
    /// `--config <configFile>`), and waits for every `readiness` condition.
    ///
    /// `launcher` is a program, with its arguments, that runs nethost in the same
    /// process (it execs it, so the PID is nethost's), such as
    /// `["/usr/bin/prlimit", "--nofile=64:64", "--"]`; nethost's path and arguments follow it.
    ///
    /// Throws, with nethost's output, if the binary is missing, if it exits first or
    /// if a condition does not hold within `timeout`; nethost is stopped then.
    static func start(
        config: (Paths) -> String,
        modules: [String: String] = [:],
        arguments: (Paths) -> [String] = { ["--config", $0.configFile] },
        environment: [String: String] = [:],
        launcher: [String] = [],
        readiness: [Readiness] = [],
        timeout: Duration = .seconds(10)
    ) async throws -> NetHostFixture {
        let (directory, paths) = try Self.prepare(config: config, modules: modules)
        let binary = try Self.binaryPath()
        let process = try ManagedProcess(
            executable: launcher.first ?? binary,
            arguments: Array(launcher.dropFirst()) + (launcher.isEmpty ? [] : [binary]) + arguments(paths),
            environment: environment,
            workingDirectory: paths.directory,
            outputDirectory: paths.directory,
            name: "nethost"
        )
        let fixture = NetHostFixture(paths: paths, process: process, directory: directory)
        do {
            for condition in readiness {
                switch condition {
                case .logLine(let text):
                    try await process.waitForLogLine(containing: text, timeout: timeout)
                case .listening(let host, let port):
                    try await waitForPort(host: host, port: port, timeout: timeout) {
                        process.checkTermination().map { "nethost \($0)" }
                    }
                }
            }
        } catch {
            process.stop()
            throw FixtureError("nethost did not start: \(error)\n  output:\n\(tail(process.output))")
        }
        return fixture
    }

    /// Convenience: the config as plain text.
    static func start(
        config: String,
        modules: [String: String] = [:],
        readiness: [Readiness] = [],
        timeout: Duration = .seconds(10)
    ) async throws -> NetHostFixture {
        try await Self.start(config: { _ in config }, modules: modules, readiness: readiness, timeout: timeout)
    }

    /// Runs `nethost` to completion (e.g. `check --config ...`) and returns how it ended
    /// and its output. Throws if it is still running after `timeout` (it is killed).
    static func run(
        arguments: (Paths) -> [String],
        config: (Paths) -> String,
        modules: [String: String] = [:],
        timeout: Duration = .seconds(10)
    ) async throws -> (termination: ManagedProcess.Termination, output: String) {
        let (directory, paths) = try Self.prepare(config: config, modules: modules)
        let process = try ManagedProcess(
            executable: try Self.binaryPath(),
            arguments: arguments(paths),
            workingDirectory: paths.directory,
            outputDirectory: directory.path,
            name: "nethost"
        )
        defer { process.stop() }
        let termination = try await process.waitForExit(timeout: timeout)
        return (termination, process.output)
    }

    private static func prepare(
        config: (Paths) -> String,
        modules: [String: String]
    ) throws -> (TemporaryDirectory, Paths) {
        let directory = try TemporaryDirectory(prefix: "nethost")
        let paths = Paths(
            directory: directory.path,
            configFile: directory.file("prosody.cfg.lua"),
            modulesDirectory: try directory.directory("modules")
        )
        try directory.write(config(paths), to: "prosody.cfg.lua")
        for (name, source) in modules {
            try directory.write(source, to: "modules/\(name)")
        }
        return (directory, paths)
    }

    /// nethost's stdout and stderr so far.
    var log: String { self.process.output }

    /// Waits for a line of nethost's output containing `text`.
    @discardableResult
    func waitForLogLine(containing text: String, timeout: Duration = .seconds(10)) async throws -> String {
        try await self.process.waitForLogLine(containing: text, timeout: timeout)
    }

    /// Stops nethost (SIGTERM, then SIGKILL after `timeout`) and reaps it.
    @discardableResult
    func stop(timeout: Duration = .seconds(5)) -> ManagedProcess.Termination {
        self.process.stop(timeout: timeout)
    }

    // MARK: Finding the binary

    /// The `nethost` executable to test, the first of:
    ///
    /// 1. `$NETHOST_BINARY`, if set;
    /// 2. `nethost` in the folder of the running test executable, or up to three
    ///    folders above it (on Linux the test runner is
    ///    `<scratch>/<triple>/debug/NetHostPackageTests.xctest`, a file beside
    ///    `nethost`; on macOS it is inside a `.xctest` bundle in that folder);
    /// 3. `<package>/.build/debug/nethost`, the package found from this source file.
    static func binaryPath() throws -> String {
        var looked: [String] = []
        if let override = ProcessInfo.processInfo.environment["NETHOST_BINARY"], !override.isEmpty {
            guard isExecutableFile(override) else {
                throw FixtureError("NETHOST_BINARY=\(override) is not an executable file")
            }
            return override
        }
        if let executable = testExecutablePath() {
            var folder = URL(fileURLWithPath: executable).deletingLastPathComponent()
            for _ in 0..<4 {
                let candidate = folder.appendingPathComponent("nethost").path
                if isExecutableFile(candidate) { return candidate }
                looked.append(candidate)
                folder.deleteLastPathComponent()
            }
        }
        let packageRoot = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent()  // Support
            .deletingLastPathComponent()  // EndToEndTests
            .deletingLastPathComponent()  // Tests
            .deletingLastPathComponent()
        let fallback = packageRoot.appendingPathComponent(".build/debug/nethost").path
        if isExecutableFile(fallback) { return fallback }
        looked.append(fallback)
        throw FixtureError(
            "the nethost binary was not found; build it first (swift build) or set NETHOST_BINARY. Looked at:\n"
                + looked.map { "    \($0)" }.joined(separator: "\n"))
    }

    /// The running test executable, symlinks resolved.
    static func testExecutablePath() -> String? {
        #if os(Linux)
        if let resolved = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            return resolved
        }
        #endif
        if let path = Bundle.main.executablePath { return URL(fileURLWithPath: path).resolvingSymlinksInPath().path }
        guard let first = CommandLine.arguments.first else { return nil }
        return URL(fileURLWithPath: first).resolvingSymlinksInPath().path
    }

    private static func isExecutableFile(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
            && !isDirectory.boolValue && access(path, X_OK) == 0
    }
}

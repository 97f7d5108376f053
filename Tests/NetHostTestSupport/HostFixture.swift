import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NetHost

/// Log records kept in memory so tests can assert what an operator would read.
public final class LogCapture: Sendable {
    public init() {}

    private let lines = NIOLockedValueBox<[String]>([])

    public var all: [String] { lines.withLockedValue { $0 } }

    public func contains(_ text: String) -> Bool { all.contains { $0.contains(text) } }

    public func handler(label: String) -> any LogHandler { Handler(capture: self, label: label) }

    fileprivate func append(_ line: String) { lines.withLockedValue { $0.append(line) } }

    private struct Handler: LogHandler {
        let capture: LogCapture
        let label: String
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .debug

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let all = self.metadata.merging(event.metadata ?? [:]) { $1 }
            let rendered = all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            capture.append("\(event.level) \(event.message) \(rendered)")
        }
    }
}

/// A temporary folder of Lua modules and a NetHost serving them on loopback.
public final class HostFixture {
    public let directory: String
    public let logs = LogCapture()
    public private(set) var server: NetHostServer?

    public init(modules: [String: String]) throws {
        directory = NSTemporaryDirectory() + "nethost-test-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for (name, source) in modules {
            try source.write(toFile: "\(directory)/mod_\(name).lua", atomically: true, encoding: .utf8)
        }
    }

    /// The options `start` would run with: every service listens on an ephemeral
    /// port of 127.0.0.1 unless the options say otherwise.
    public static func options(_ options: [String: ConfigValue], hosts: [String: [String: ConfigValue]] = [:]) -> FixedOptions {
        var global = options
        if global["interfaces"] == nil { global["interfaces"] = .table(ConfigTable(array: [.string("127.0.0.1")])) }
        return FixedOptions(global: global, hosts: hosts)
    }

    /// Starts NetHost with these global options (and host sections); every service
    /// listens on an ephemeral port of 127.0.0.1 unless the options say otherwise.
    @discardableResult
    public func start(
        options: [String: ConfigValue], hosts: [String: [String: ConfigValue]] = [:],
        natives: [any NativeModule.Type] = BuiltinModules.all
    ) async throws -> NetHostServer {
        let logger = Logger(label: "nethost-test", factory: logs.handler(label:))
        let server = try await NetHostServer(
            .init(
                options: Self.options(options, hosts: hosts),
                configDirectory: directory,
                nativeModules: natives,
                pluginPaths: [directory],
                shippedModules: nil,
                threads: 2
            ),
            logger: logger
        )
        self.server = server
        await server.start()
        return server
    }

    public func port(of service: String) throws -> Int {
        guard let port = server?.ports.boundAddresses(of: service).first?.port else {
            throw FixtureError("service \(service) is not listening; log:\n" + logs.all.joined(separator: "\n"))
        }
        return port
    }

    /// `timeout` bounds connecting and each send and read that gives none of its own.
    public func connect(to service: String, timeout: Duration = .seconds(5)) throws -> TestClient {
        try TestClient(connectingTo: "127.0.0.1", port: port(of: service), timeout: timeout)
    }

    /// Waits (bounded) until `condition` holds, polling.
    public func eventually(timeout: Double = 5, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition() { return true }
            usleep(10_000)
        }
        return condition()
    }

    /// `eventually` for async tests: waits without holding one of the few threads
    /// Swift's concurrency pool has, which the server's own tasks may need.
    public func waitUntil(timeout: Duration = .seconds(10), _ condition: () -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return condition()
    }

    public func stop() async {
        await server?.shutdown(drainTime: .seconds(2))
        server = nil
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// A test that ended before `stop()` (an expectation that threw) still stops
    /// its server: its threads, ports and Lua state would otherwise outlive it.
    deinit {
        server?.unloadNow()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// A host serving `modules` with `options` for the length of `body`; it is
    /// stopped however `body` ends.
    public static func running(
        modules: [String: String],
        options: [String: ConfigValue],
        _ body: (HostFixture) async throws -> Void
    ) async throws {
        let fixture = try HostFixture(modules: modules)
        try await fixture.start(options: options)
        do {
            try await body(fixture)
        } catch {
            await fixture.stop()
            throw error
        }
        await fixture.stop()
    }
}

extension ConfigValue {
    public static func list(_ values: ConfigValue...) -> ConfigValue { .table(ConfigTable(array: values)) }
    public static func strings(_ values: String...) -> ConfigValue { .table(ConfigTable(array: values.map { .string($0) })) }
}

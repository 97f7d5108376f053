import CoreMetrics
import Foundation
import Logging
import NIOCore
import NIOEmbedded
import NetHostTestSupport
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging

/// Lua modules loaded by a real `ModuleManager` on an `EmbeddedEventLoop`: no
/// sockets, and time moves only when the test says (`advance(by:)`), so timers
/// and memory can be checked exactly. The wall clock timers report starts at
/// `wallClockStart` and moves with the loop's time.
///
/// Modules can call a global `trace(text)`; `traced` holds what they said, in order.
///
/// It stops what it starts when it goes: the connections it made close, and the
/// module manager stops (`server-cleanup`, `server-stopped`, the Lua state
/// closes), as the server does at shutdown.
final class ModuleHarness {
    let loop = EmbeddedEventLoop()
    let directory: String
    let logs = LogCapture()
    let services = ServiceRegistry()
    let options: LiveOptions
    let manager: ModuleManager
    private let traceLines = TraceLines()
    /// The connections `connect(to:)` made, closed when the harness goes.
    private var channels: [EmbeddedChannel] = []
    /// Whether the harness stops the module manager when it goes, as the server
    /// does at shutdown; a test of a runtime dropped without shutdown turns it off.
    var stopsManagerWhenDone = true
    static let wallClockStart = 1_700_000_000.0

    /// `hosts`: options of host sections; `component_module` makes one a Component.
    convenience init(
        modules: [String: String],
        options: [String: ConfigValue],
        hosts: [String: [String: ConfigValue]] = [:],
        natives: [any NativeModule.Type] = []
    ) throws {
        try self.init(modules: modules, optionSource: FixedOptions(global: options, hosts: hosts), natives: natives)
    }

    /// With the options of a loaded config (`Configuration`), or any other source.
    /// `shippedModules`: a folder searched after the harness's own, as NetHost's shipped modules are.
    init(
        modules: [String: String], optionSource: any OptionSource, natives: [any NativeModule.Type] = [],
        shippedModules: String? = nil, metrics: any MetricsFactory = MetricsSystem.factory
    ) throws {
        directory = NSTemporaryDirectory() + "nethost-harness-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for (name, source) in modules {
            try source.write(toFile: "\(directory)/mod_\(name).lua", atomically: true, encoding: .utf8)
        }
        self.options = LiveOptions(optionSource)
        manager = try ModuleManager(
            group: loop, luaLoop: loop, options: self.options, services: services,
            natives: natives, finder: LuaModuleFinder(pluginPaths: [directory], shippedModules: shippedModules),
            configDirectory: directory, logger: Logger(label: "harness", factory: logs.handler(label:)),
            metricsFactory: metrics
        )
        let loop = self.loop
        manager.runtime.wallClock = { Self.wallClockStart + Double(loop.now.uptimeNanoseconds) / 1e9 }
        let stack = manager.runtime.state.stack
        stack.pushGlobalTable()
        stack.setFunction("trace", in: -1) { [traceLines] stack in
            traceLines.append(stack.toString(at: 1) ?? stack.describe(at: 1))
            return 0
        }
        stack.pop()
        manager.loadEnabledModules()
    }

    /// What the modules passed to `trace`, in order.
    var traced: [String] { traceLines.lines }

    /// Adds a line to `traced`, as a module's `trace` does.
    func trace(_ line: String) { traceLines.append(line) }

    /// Forgets what was traced so far.
    func clearTrace() { traceLines.lines.removeAll() }

    /// Replaces the config (as SIGHUP does before `manager.reload()`).
    func replaceOptions(_ global: [String: ConfigValue], hosts: [String: [String: ConfigValue]] = [:]) {
        options.replace(with: FixedOptions(global: global, hosts: hosts))
    }

    deinit {
        // An open EmbeddedChannel and its pipeline keep each other (NIO breaks that
        // when the channel closes), and the connection in it keeps the runtime.
        for channel in channels {
            _ = try? channel.close().wait()
        }
        if stopsManagerWhenDone { manager.stop() }
        // Runs what closing left to do and drops what never came due (a native
        // module's repeated task): an EmbeddedEventLoop must go with none pending.
        try? loop.syncShutdownGracefully()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Replaces a module's file (a new inode, as an editor's save does).
    /// NetHost's side of `ProsodyDriver.runTwoHostProbe`: `probe` loaded globally
    /// and as `host_probe` on a.example; what they traced.
    func runTwoHostProbe(_ probe: String) throws -> [String] {
        try write(module: "probe", probe)
        try write(module: "host_probe", probe)
        try manager.load("probe")
        try manager.load("host_probe", host: "a.example")
        return traced
    }

    func write(module name: String, _ source: String) throws {
        try source.write(toFile: "\(directory)/mod_\(name).lua", atomically: true, encoding: .utf8)
    }

    func advance(by amount: TimeAmount) { loop.advanceTime(by: amount) }

    /// A config reload, as SIGHUP does it: the new options, then the manager's `reload()`.
    func reload(options: [String: ConfigValue]) throws {
        self.options.replace(with: FixedOptions(global: options))
        try manager.reload()
    }

    /// How many log lines contain `text`.
    func count(_ text: String) -> Int { logs.all.filter { $0.contains(text) }.count }

    /// The Lua state's memory after a full collection: what the modules really keep.
    var luaMemory: Int { manager.runtime.memoryAfterFullCollection() }

    /// A connection to `service` over an `EmbeddedChannel`, already connected,
    /// with `settings` as the server would give it from `network_settings`.
    func connect(to service: String, settings: NetworkSettings = NetworkSettings()) throws -> EmbeddedChannel {
        guard let listener = services.service(named: service)?.listener else {
            throw HarnessError(description: "no service '\(service)'; log:\n" + logs.all.joined(separator: "\n"))
        }
        let channel = EmbeddedChannel(loop: loop)
        try channel.pipeline.syncOperations.addHandler(
            ConnectionHandler(serviceName: service, listener: listener, settings: settings, logger: Logger(label: "harness", factory: logs.handler(label:))))
        channels.append(channel)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).wait()
        return channel
    }

    struct HarnessError: Error, CustomStringConvertible {
        let description: String
    }
}

/// What modules traced; used on the harness's one loop only.
private final class TraceLines {
    var lines: [String] = []
    func append(_ line: String) { lines.append(line) }
}

extension EmbeddedChannel {
    /// Sends `text` to the service and returns what it wrote back, as text.
    func exchange(_ text: String) throws -> String {
        try writeInbound(ByteBuffer(string: text))
        return try sent()
    }

    /// What the service wrote since the last look, as text.
    func sent() throws -> String {
        var reply = ""
        while var buffer = try readOutbound(as: ByteBuffer.self) {
            reply += buffer.readString(length: buffer.readableBytes) ?? ""
        }
        return reply
    }
}

extension NetworkSettings {
    /// The settings the server would make of `network_settings = entries`; a problem fails the test.
    static func parsing(_ entries: [String: ConfigValue]) throws -> NetworkSettings {
        var problems: [Problem] = []
        let table = ConfigTable(map: Dictionary(uniqueKeysWithValues: entries.map { (ConfigKey.string($0.key), $0.value) }))
        let settings = NetworkSettings(from: table, problems: &problems)
        guard problems.isEmpty else { throw ModuleHarness.HarnessError(description: "\(problems)") }
        return settings
    }
}

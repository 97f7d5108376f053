import Foundation
import Logging
import NIOCore
import NIOEmbedded
import NetHostTestSupport
@testable import NetHost

/// Lua modules loaded by a real `ModuleManager` on an `EmbeddedEventLoop`: no
/// sockets, and time moves only when the test says (`advance(by:)`), so timers
/// and memory can be checked exactly.
final class ModuleHarness {
    let loop = EmbeddedEventLoop()
    let directory: String
    let logs = LogCapture()
    let services = ServiceRegistry()
    let manager: ModuleManager

    init(modules: [String: String], options: [String: ConfigValue]) throws {
        directory = NSTemporaryDirectory() + "nethost-harness-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for (name, source) in modules {
            try source.write(toFile: "\(directory)/mod_\(name).lua", atomically: true, encoding: .utf8)
        }
        manager = try ModuleManager(
            group: loop, luaLoop: loop, options: FixedOptions(global: options), services: services,
            natives: [], finder: LuaModuleFinder(pluginPaths: [directory], shippedModules: nil),
            configDirectory: directory, logger: Logger(label: "harness", factory: logs.handler(label:))
        )
        manager.loadEnabledModules()
    }

    deinit {
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Replaces a module's file (a new inode, as an editor's save does).
    func write(module name: String, _ source: String) throws {
        try source.write(toFile: "\(directory)/mod_\(name).lua", atomically: true, encoding: .utf8)
    }

    func advance(by amount: TimeAmount) { loop.advanceTime(by: amount) }

    /// The Lua state's memory after a full collection: what the modules really keep.
    var luaMemory: Int { manager.runtime.memoryAfterFullCollection() }

    /// A connection to `service` over an `EmbeddedChannel`, already connected.
    func connect(to service: String) throws -> EmbeddedChannel {
        guard let listener = services.service(named: service)?.listener else {
            throw HarnessError(description: "no service '\(service)'; log:\n" + logs.all.joined(separator: "\n"))
        }
        let channel = EmbeddedChannel(loop: loop)
        try channel.pipeline.syncOperations.addHandler(
            ConnectionHandler(serviceName: service, listener: listener, settings: NetworkSettings(), logger: Logger(label: "harness")))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).wait()
        return channel
    }

    struct HarnessError: Error, CustomStringConvertible {
        let description: String
    }
}

extension EmbeddedChannel {
    /// Sends `text` to the service and returns what it wrote back, as text.
    func exchange(_ text: String) throws -> String {
        try writeInbound(ByteBuffer(string: text))
        var reply = ""
        while var buffer = try readOutbound(as: ByteBuffer.self) {
            reply += buffer.readString(length: buffer.readableBytes) ?? ""
        }
        return reply
    }
}

import Foundation
import Logging
import NIOCore
import NIOEmbedded
import NetHost
import NetHostTestSupport
import Testing
@testable import ProxyModule

/// net_proxy logs the first of a run of identical refusals at once and the rest
/// as one summary every ten seconds of its loop's clock: here the module runs in
/// a `ModuleManager` on an `EmbeddedEventLoop`, so the ten seconds are virtual.
@Suite("net_proxy's refusal summaries")
struct ProxySummaryTests {
    static let port = 15222

    @Test("three refusals of one untrusted peer: one line at once, a summary of the other two at 10 s and not at 9.999 s")
    func summaryEveryTenSeconds() throws {
        let loop = EmbeddedEventLoop()
        let logs = LogCapture()
        let logger = Logger(label: "summaries", factory: logs.handler(label:))
        let directory = NSTemporaryDirectory() + "nethost-summaries-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let services = ServiceRegistry()
        let manager = try ModuleManager(
            group: loop, luaLoop: loop,
            options: FixedOptions(global: [
                "modules_enabled": .strings("net_proxy"),
                "proxy_port_mappings": .table(ConfigTable(map: [.integer(Self.port): .string("svc")])),
            ]),
            services: services, natives: [NetProxyModule.self],
            finder: LuaModuleFinder(pluginPaths: [directory], shippedModules: nil),
            configDirectory: directory, logger: logger
        )
        defer { manager.stop() }
        #expect(manager.loadEnabledModules().isEmpty)
        guard case .pipeline(let pipeline)? = services.service(named: "proxy")?.handling else {
            Issue.record("net_proxy provides no pipeline service; log:\n\(logs.all.joined(separator: "\n"))")
            return
        }
        let context = PipelineContext(
            services: services, settings: LiveValue(NetworkSettings()), logger: logger, tracker: ConnectionTracker(), luaLoop: loop)
        for port in 40000 ..< 40003 {
            let channel = EmbeddedChannel(loop: loop)
            try pipeline.initialize(channel: channel, port: Self.port, context: context).wait()
            try channel.connect(to: SocketAddress(ipAddress: "198.51.100.1", port: port)).wait()
            #expect(!channel.isActive)
        }
        let refusals = { logs.all.filter { $0.contains("refused a connection from an untrusted peer") } }
        #expect(refusals().count == 1)
        loop.advanceTime(by: .milliseconds(9_999))
        #expect(refusals().count == 1)
        loop.advanceTime(by: .milliseconds(1))
        #expect(refusals().last
            == "warning refused a connection from an untrusted peer (not in proxy_trusted_proxies) (repeated 2 more times) module=net_proxy peer=198.51.100.1")
        loop.advanceTime(by: .seconds(10))
        #expect(refusals().count == 2, "nothing repeated since the last summary")
    }
}

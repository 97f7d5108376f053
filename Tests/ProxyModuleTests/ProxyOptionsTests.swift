import NetHost
import ProxyModule
import Testing

/// net_proxy's options as the registry knows them: global-only, used, and the
/// target of a "did you mean" for a misspelling.
@Suite("net_proxy's declared options")
struct ProxyOptionsTests {
    static let registry = OptionRegistry(nativeModules: BuiltinModules.all + ProxyModules.all)

    @Test("a proxy_* option under a host is a warning", arguments: [
        "proxy_port_mappings = { [15222] = \"c2s\" }", "proxy_trusted_proxies = { \"127.0.0.1\" }",
        "proxy_header_timeout = 5", "proxy_max_header_size = 1024", "proxy_ports = { 15222 }",
        "proxy_interfaces = { \"127.0.0.1\" }", "proxy_max_pending_headers = 1000",
    ])
    func globalOnly(assignment: String) throws {
        let name = String(assignment.prefix { $0 != " " })
        let underHost = try ConfigLoader.load(source: "VirtualHost \"example.com\"\n" + assignment + "\n", registry: Self.registry)
        #expect(underHost.diagnostics.map(\.description) == [
            "prosody.cfg.lua:2: option '\(name)' only works in the global section and has no effect under VirtualHost \"example.com\"; move it above the first VirtualHost or Component",
        ])
        let global = try ConfigLoader.load(source: assignment + "\n", registry: Self.registry)
        #expect(global.diagnostics.isEmpty)
    }

    /// Before the registry, check listed proxy_max_header_size among the unknown options,
    /// and proxy_trusted_proxy without a suggestion.
    @Test("proxy_max_header_size is used; proxy_trusted_proxy is a typo of proxy_trusted_proxies")
    func usage() throws {
        let configuration = try ConfigLoader.load(source: """
            proxy_port_mappings = { [15222] = "demo_whoami" }
            proxy_max_header_size = 1024
            proxy_header_timeout = 3
            proxy_trusted_proxy = { "10.0.0.0/8" }
            """, registry: Self.registry).configuration
        let usage = OptionUsageReport(configuration: configuration, registry: Self.registry, services: ["proxy", "demo_whoami"])
        #expect(usage.used == ["proxy_header_timeout", "proxy_max_header_size", "proxy_port_mappings"])
        #expect(usage.unknown.map(\.description) == ["proxy_trusted_proxy (did you mean proxy_trusted_proxies?)"])
    }

    @Test("net_proxy declares every option ProxyConfiguration reads, but network_settings (the host's, for max_pending_headers_per_ip)")
    func declaresWhatItReads() throws {
        var asked: [String] = []
        _ = try ProxyConfiguration { option in
            asked.append(option.name)
            return nil
        }
        #expect(Set(asked).isSubset(of: Set(NetProxyModule.declaredOptions.map(\.name) + [NetworkOptions.networkSettings.name])))
        #expect(!asked.isEmpty)
    }
}

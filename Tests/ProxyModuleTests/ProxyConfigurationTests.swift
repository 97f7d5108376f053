import Glibc
import NIOCore
import NetHost
import ProxyModule
import ProxyProtocol
import Testing

/// Reads a configuration from these options, as the module does at start.
private func configuration(_ options: [String: ConfigValue]) throws(ProxyConfiguration.Invalid) -> ProxyConfiguration {
    try ProxyConfiguration { options[$0.name] }
}

/// The error text for options that must be refused, or nil if they were accepted.
private func refusal(_ options: [String: ConfigValue]) -> String? {
    do {
        _ = try configuration(options)
        return nil
    } catch {
        return error.description
    }
}

private func mappings(_ pairs: [ConfigKey: ConfigValue]) -> ConfigValue {
    .table(ConfigTable(map: pairs))
}

private let oneMapping = mappings([.integer(15222): .string("c2s")])

@Suite("ProxyConfiguration: the proxy_* options")
struct ProxyConfigurationTests {
    // MARK: proxy_port_mappings

    @Test("nothing configured: no port, loopback trusted, 5 s header timeout, 4096-byte headers, one warning")
    func defaults() throws {
        let config = try configuration([:])
        #expect(config.portMappings.isEmpty)
        #expect(config.ports.isEmpty)
        #expect(config.trustedProxies == .default)
        #expect(config.trustedProxies.description == "127.0.0.1/32, ::1/128")
        #expect(config.headerTimeout == 5)
        #expect(config.maximumHeaderLength == 4096)
        #expect(config.warnings == ["proxy_port_mappings is empty: net_proxy listens on no port"])
    }

    @Test("integer keys map ports to services; the ports listened on are the mapped ones, sorted")
    func integerKeys() throws {
        let config = try configuration(["proxy_port_mappings": mappings([
            .integer(15269): .string("s2s"), .integer(15222): .string("c2s"),
        ])])
        #expect(config.portMappings == [15222: "c2s", 15269: "s2s"])
        #expect(config.ports == [15222, 15269])
        #expect(config.warnings.isEmpty)
    }

    @Test("string keys that are port numbers are accepted too")
    func stringKeys() throws {
        let config = try configuration(["proxy_port_mappings": mappings([
            .string("15222"): .string("c2s"), .integer(1): .string("low"), .string("65535"): .string("high"),
        ])])
        #expect(config.portMappings == [15222: "c2s", 1: "low", 65535: "high"])
        #expect(config.ports == [1, 15222, 65535])
    }

    @Test("a plain list is refused: { \"c2s\" } would map port 1")
    func plainList() {
        #expect(refusal(["proxy_port_mappings": .strings("c2s")])
            == "proxy_port_mappings: expected port = service pairs like { [15222] = \"c2s\" }, found a plain list")
    }

    @Test("a value that is not a table is refused, naming its type", arguments: [
        (ConfigValue.string("c2s"), "string"), (.integer(15222), "number"), (.boolean(true), "boolean"),
    ])
    func notATable(value: ConfigValue, type: String) {
        #expect(refusal(["proxy_port_mappings": value])
            == "proxy_port_mappings: expected a table like { [15222] = \"c2s\" }, got a \(type)")
    }

    @Test("a key that is not a port 1-65535 is refused, written as the user wrote it", arguments: [
        (ConfigKey.integer(0), "0"), (.integer(65536), "65536"), (.integer(-5), "-5"),
        (.string("http"), "\"http\""), (.string("0"), "\"0\""),
    ])
    func badPort(key: ConfigKey, shown: String) {
        #expect(refusal(["proxy_port_mappings": mappings([key: .string("c2s")])])
            == "proxy_port_mappings: \(shown) is not a port number (1-65535)")
    }

    @Test("a port must map to a non-empty service name", arguments: [
        ConfigValue.integer(5222), .boolean(true), .string(""), .strings("c2s"),
    ])
    func serviceNotAString(value: ConfigValue) {
        #expect(refusal(["proxy_port_mappings": mappings([.integer(15222): value])])
            == "proxy_port_mappings: port 15222 must map to a service name (a string)")
    }

    // MARK: proxy_ports

    @Test("proxy_ports overrides the ports listened on; each port it lists without a mapping is warned about")
    func portsOverride() throws {
        let config = try configuration([
            "proxy_port_mappings": mappings([.integer(15222): .string("c2s"), .integer(15269): .string("s2s")]),
            "proxy_ports": .list(.integer(15269), .integer(16000), .integer(16000), .integer(17000)),
        ])
        #expect(config.ports == [15269, 16000, 17000])
        #expect(config.portMappings == [15222: "c2s", 15269: "s2s"])
        #expect(config.warnings == [
            "proxy_ports lists port 16000, which proxy_port_mappings does not map: its connections will be closed after the header",
            "proxy_ports lists port 17000, which proxy_port_mappings does not map: its connections will be closed after the header",
        ])
    }

    @Test("proxy_ports may be a single number")
    func singlePort() throws {
        let config = try configuration(["proxy_port_mappings": oneMapping, "proxy_ports": .integer(15222)])
        #expect(config.ports == [15222])
        #expect(config.warnings.isEmpty)
    }

    @Test("numbers may be given as strings, as ENV_ variables give them (Prosody reads them with tonumber)")
    func numbersFromStrings() throws {
        let config = try configuration([
            "proxy_port_mappings": oneMapping, "proxy_ports": .string("15222"),
            "proxy_header_timeout": .string("5"), "proxy_max_header_size": .string("4096"),
        ])
        #expect(config.ports == [15222])
        #expect(config.headerTimeout == 5)
        #expect(config.maximumHeaderLength == 4096)
    }

    @Test("proxy_ports must hold port numbers", arguments: [
        ConfigValue.string("fifteen"), .integer(0), .list(.integer(15222), .integer(70000)), .list(.string("x")),
    ])
    func badPorts(value: ConfigValue) {
        #expect(refusal(["proxy_port_mappings": oneMapping, "proxy_ports": value])
            == "proxy_ports: expected a list of port numbers (1-65535)")
    }

    // MARK: proxy_trusted_proxies

    @Test("a list of addresses and networks is the trusted set")
    func trustList() throws {
        let config = try configuration([
            "proxy_port_mappings": oneMapping,
            "proxy_trusted_proxies": .strings("10.0.0.0/8", "192.0.2.7", "2001:db8::/32"),
        ])
        #expect(config.trustedProxies == (try TrustedProxies(["192.0.2.7", "10.0.0.0/8", "2001:db8::/32"])))
        #expect(!config.trustedProxies.trustsEveryone)
        #expect(config.warnings.isEmpty)
    }

    @Test("a single string, and Prosody's set form { [\"10.0.0.0/8\"] = true }, are accepted")
    func trustShapes() throws {
        let single = try configuration(["proxy_port_mappings": oneMapping, "proxy_trusted_proxies": .string("192.0.2.7")])
        #expect(single.trustedProxies == (try TrustedProxies(["192.0.2.7"])))
        let set = try configuration([
            "proxy_port_mappings": oneMapping,
            "proxy_trusted_proxies": .table(ConfigTable(map: [.string("10.0.0.0/8"): .boolean(true)])),
        ])
        #expect(set.trustedProxies == (try TrustedProxies(["10.0.0.0/8"])))
    }

    @Test("an empty list trusts everyone, with a warning")
    func emptyTrustList() throws {
        let config = try configuration(["proxy_port_mappings": oneMapping, "proxy_trusted_proxies": .table(ConfigTable())])
        #expect(config.trustedProxies.trustsEveryone)
        #expect(config.trustedProxies.description == "everyone")
        #expect(config.warnings == [
            "proxy_trusted_proxies is empty, so any peer may send a PROXY header and claim any address; list your load balancers instead",
        ])
    }

    @Test("a table none of whose entries names a proxy is refused, not read as {} (which trusts everyone)", arguments: [
        ConfigTable(map: [.string("10.0.0.0/8"): .boolean(false)]),
        ConfigTable(map: [.string("10.0.0.0/8"): .string("yes")]),
        ConfigTable(map: [.integer(3): .string("10.0.0.1")]),
    ])
    func tableWithoutEntries(table: ConfigTable) {
        #expect(refusal(["proxy_port_mappings": oneMapping, "proxy_trusted_proxies": .table(table)])
            == "proxy_trusted_proxies: no entry is an address or network (the set form needs [\"10.0.0.0/8\"] = true); write {} to trust every peer")
    }

    @Test("a malformed entry is refused with the entry and the reason", arguments: [
        ("10.0.0.0/33", "trusted proxy entry \"10.0.0.0/33\": prefix length 33 is out of range, an IPv4 network takes 0 to 32"),
        ("proxy.example", "trusted proxy entry \"proxy.example\": host names are not resolved; write IP addresses or networks (for this host: 127.0.0.1 and ::1)"),
        ("[::1]", "trusted proxy entry \"[::1]\": write IPv6 addresses without brackets, e.g. ::1 or 2001:db8::/32"),
    ])
    func malformedTrustEntry(entry: String, reason: String) {
        #expect(refusal(["proxy_port_mappings": oneMapping, "proxy_trusted_proxies": .strings("127.0.0.1", entry)])
            == "proxy_trusted_proxies: \(reason)")
    }

    @Test("entries must be strings; the option must be a list or a string")
    func trustWrongTypes() {
        #expect(refusal(["proxy_port_mappings": oneMapping, "proxy_trusted_proxies": .list(.string("127.0.0.1"), .integer(10))])
            == "proxy_trusted_proxies: expected addresses or networks as strings, found a number")
        #expect(refusal(["proxy_port_mappings": oneMapping, "proxy_trusted_proxies": .boolean(true)])
            == "proxy_trusted_proxies: expected a list like { \"127.0.0.1\", \"10.0.0.0/8\" }")
    }

    // MARK: proxy_header_timeout

    @Test("proxy_header_timeout takes seconds in (0, 3600]", arguments: [
        (ConfigValue.integer(3), 3.0), (.number(4.5), 4.5), (.integer(3600), 3600.0),
    ])
    func headerTimeout(value: ConfigValue, seconds: Double) throws {
        let config = try configuration(["proxy_port_mappings": oneMapping, "proxy_header_timeout": value])
        #expect(config.headerTimeout == seconds)
        #expect(config.warnings.isEmpty)
    }

    @Test("a header timeout under 3 s is accepted with a warning")
    func shortHeaderTimeout() throws {
        let config = try configuration(["proxy_port_mappings": oneMapping, "proxy_header_timeout": .number(0.5)])
        #expect(config.headerTimeout == 0.5)
        #expect(config.warnings == ["proxy_header_timeout is 0.5 s; the PROXY specification advises at least 3 s"])
    }

    @Test("a header timeout out of bounds or not a number is refused", arguments: [
        ConfigValue.integer(0), .number(-1), .number(3600.5), .number(.infinity), .number(.nan), .string("five"), .string("inf"), .boolean(true),
    ])
    func badHeaderTimeout(value: ConfigValue) {
        #expect(refusal(["proxy_port_mappings": oneMapping, "proxy_header_timeout": value])
            == "proxy_header_timeout: expected a number of seconds above 0 (at most 3600)")
    }

    @Test("the header's time limit: the option's seconds, a year at most; the default for a value set from Swift that is no timeout", arguments: [
        (3.0, TimeAmount.seconds(3)), (0.25, .milliseconds(250)), (1e10, TimeoutSeconds.maximumAmount),
        (.infinity, .seconds(5)), (.nan, .seconds(5)), (-1, .seconds(5)),
    ])
    func headerTimeLimit(seconds: Double, limit: TimeAmount) {
        var config = ProxyConfiguration(portMappings: [:])
        config.headerTimeout = seconds
        #expect(config.headerTimeLimit == limit)
    }

    // MARK: proxy_max_header_size

    @Test("proxy_max_header_size takes 232 (v2 with UNIX addresses) to 65551 (16 + 65535) bytes", arguments: [
        (ConfigValue.integer(232), 232), (.integer(65551), 65551), (.number(1024), 1024),
    ])
    func maxHeaderSize(value: ConfigValue, bytes: Int) throws {
        let config = try configuration(["proxy_port_mappings": oneMapping, "proxy_max_header_size": value])
        #expect(config.maximumHeaderLength == bytes)
    }

    @Test("a header size out of bounds or not a whole number is refused", arguments: [
        ConfigValue.integer(231), .integer(65552), .number(1024.5), .string("4k"),
    ])
    func badMaxHeaderSize(value: ConfigValue) {
        #expect(refusal(["proxy_port_mappings": oneMapping, "proxy_max_header_size": value])
            == "proxy_max_header_size: expected a byte count from 232 (a v2 header with UNIX addresses) to 65551")
    }

    // MARK: Pending-header budgets

    @Test("by default 256 connections of one address and half the open-file limit of all may wait for their header")
    func pendingBudgetDefaults() throws {
        let config = try configuration(["proxy_port_mappings": oneMapping])
        #expect(config.maxPendingHeadersPerIP == 256)
        var limit = rlimit()
        try #require(getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0)
        let expected = limit.rlim_cur == rlim_t.max ? 65536 : Int(limit.rlim_cur / 2)
        #expect(config.maxPendingHeaders == expected)
        #expect(config.maxPendingHeaders > 0)
    }

    @Test("proxy_max_pending_headers sets the budget of all addresses; max_pending_headers_per_ip in network_settings that of each")
    func pendingBudgets() throws {
        let config = try configuration([
            "proxy_port_mappings": oneMapping, "proxy_max_pending_headers": .integer(10),
            "network_settings": .table(ConfigTable(map: [.string("max_pending_headers_per_ip"): .integer(4)])),
        ])
        #expect(config.maxPendingHeaders == 10)
        #expect(config.maxPendingHeadersPerIP == 4)
        #expect(config.warnings.isEmpty)
    }

    @Test("proxy_max_pending_headers must be a whole number of at least 1", arguments: [
        ConfigValue.integer(0), .integer(-5), .number(10.5), .string("many"),
    ])
    func badPendingBudget(value: ConfigValue) {
        #expect(refusal(["proxy_port_mappings": oneMapping, "proxy_max_pending_headers": value])
            == "proxy_max_pending_headers: expected a whole number of connections, at least 1")
    }

    @Test("a budget not below the open-file limit is accepted with a warning: it would never shed before descriptors ran out")
    func pendingBudgetAboveFileLimit() throws {
        var limit = rlimit()
        try #require(getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0)
        try #require(limit.rlim_cur != rlim_t.max && limit.rlim_cur < UInt64(Int.max))
        let config = try configuration(["proxy_port_mappings": oneMapping, "proxy_max_pending_headers": .integer(Int(limit.rlim_cur))])
        #expect(config.maxPendingHeaders == Int(limit.rlim_cur))
        #expect(config.warnings == [
            "proxy_max_pending_headers is \(limit.rlim_cur), not below the open-file limit (\(limit.rlim_cur)): "
                + "connections waiting for a header can take every descriptor before any is shed",
        ])
    }
}

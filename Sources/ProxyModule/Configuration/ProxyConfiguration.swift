import NIOCore
import NetHost
import ProxyProtocol

/// The `proxy_*` options (declared in `ProxyOptions`), checked once at start.
public struct ProxyConfiguration: Sendable {
    /// Port -> the service that gets connections arriving on it.
    public var portMappings: [Int: String]
    /// The ports to listen on: `proxy_ports` if set, else the mapped ports.
    public var ports: [Int]
    public var trustedProxies: TrustedProxies
    /// Seconds a proxy has to deliver the whole header.
    public var headerTimeout: Double
    /// The largest v2 header accepted; v1 is always at most 107 bytes.
    public var maximumHeaderLength: Int
    /// Connections one address may have open whose PROXY header has not arrived yet
    /// (a slow or silent sender holds a slot until its timeout); past it the
    /// address's oldest waiting connection is shed: `network_settings.max_pending_headers_per_ip`.
    public var maxPendingHeadersPerIP: Int
    /// The same for all addresses together; past it the oldest waiting connection
    /// of any address is shed: `proxy_max_pending_headers`.
    public var maxPendingHeaders: Int
    /// Not fatal: logged at start and listed by `nethost check`.
    public var warnings: [String] = []

    public static let defaultHeaderTimeout = 5.0
    public static let defaultMaxPendingHeadersPerIP = 256
    /// When the process has no limit on open files.
    public static let maxPendingHeadersWithoutFileLimit = 65536

    /// Half the process's soft limit on open files (`ulimit -n`), read now: connections
    /// waiting for a header then leave the other half to the served ones, and a flood
    /// of them sheds its own oldest instead of running the process out of descriptors.
    public static var defaultMaxPendingHeaders: Int {
        guard let limit = DescriptorLimit.current else { return maxPendingHeadersWithoutFileLimit }
        return Int(clamping: max(1, limit / 2))
    }

    /// `headerTimeout` on the loop's clock. `proxy_header_timeout` is checked when read
    /// (above 0, at most 3600); a value set from Swift is not, so one that cannot be a
    /// timeout (NaN, negative, infinite) counts as the default rather than trapping.
    public var headerTimeLimit: TimeAmount {
        (try? TimeoutSeconds.timeAmount(headerTimeout))
            ?? .milliseconds(Int64(Self.defaultHeaderTimeout * 1000))
    }

    /// A `proxy_*` option that cannot be used as written: start-up stops, as for a config error.
    public struct Invalid: ModuleConfigurationError, Sendable {
        public let option: String
        public let reason: String
        public var description: String { "\(option): \(reason)" }
    }

    public init(
        portMappings: [Int: String],
        ports: [Int]? = nil,
        trustedProxies: TrustedProxies = .default,
        headerTimeout: Double = ProxyConfiguration.defaultHeaderTimeout,
        maximumHeaderLength: Int = ProxyHeaderParser.defaultMaximumHeaderLength,
        maxPendingHeadersPerIP: Int = ProxyConfiguration.defaultMaxPendingHeadersPerIP,
        maxPendingHeaders: Int = ProxyConfiguration.defaultMaxPendingHeaders
    ) {
        self.portMappings = portMappings
        self.ports = ports ?? portMappings.keys.sorted()
        self.trustedProxies = trustedProxies
        self.headerTimeout = headerTimeout
        self.maximumHeaderLength = maximumHeaderLength
        self.maxPendingHeadersPerIP = maxPendingHeadersPerIP
        self.maxPendingHeaders = maxPendingHeaders
    }

    /// Reads the options with `option(declaration)`; wrong shapes throw `Invalid`.
    public init(option: (OptionDeclaration) -> ConfigValue?) throws(Invalid) {
        self.init(portMappings: [:])
        portMappings = try Self.mappings(option(ProxyOptions.portMappings))
        if let explicit = option(ProxyOptions.ports) {
            ports = try Self.portList(explicit, option: ProxyOptions.ports.name)
            for port in ports where portMappings[port] == nil {
                warnings.append("proxy_ports lists port \(port), which proxy_port_mappings does not map: its connections will be closed after the header")
            }
        } else {
            ports = portMappings.keys.sorted()
        }
        if ports.isEmpty {
            warnings.append("proxy_port_mappings is empty: net_proxy listens on no port")
        }
        trustedProxies = try Self.trusted(option(ProxyOptions.trustedProxies))
        if trustedProxies.trustsEveryone {
            warnings.append("proxy_trusted_proxies is empty, so any peer may send a PROXY header and claim any address; list your load balancers instead")
        }
        if let value = option(ProxyOptions.headerTimeout) {
            guard let seconds = value.numberValue, seconds > 0, seconds <= 3600 else {
                throw Invalid(option: ProxyOptions.headerTimeout.name, reason: "expected a number of seconds above 0 (at most 3600)")
            }
            headerTimeout = seconds
            if seconds < 3 {
                warnings.append("proxy_header_timeout is \(seconds) s; the PROXY specification advises at least 3 s")
            }
        }
        if let value = option(ProxyOptions.maxHeaderSize) {
            guard let size = value.integerValue, size >= 232, size <= ProxyHeaderParser.v2ProtocolMaximumLength else {
                throw Invalid(option: ProxyOptions.maxHeaderSize.name, reason: "expected a byte count from 232 (a v2 header with UNIX addresses) to 65551")
            }
            maximumHeaderLength = size
        }
        if let value = option(NetworkOptions.networkSettings)?.tableValue?["max_pending_headers_per_ip"] {
            if let count = value.integerValue, count >= 1 {
                maxPendingHeadersPerIP = count
            } else {
                warnings.append("network_settings.max_pending_headers_per_ip: expected a whole number of at least 1, ignored")
            }
        }
        if let value = option(ProxyOptions.maxPendingHeaders) {
            guard let count = value.integerValue, count >= 1 else {
                throw Invalid(option: ProxyOptions.maxPendingHeaders.name, reason: "expected a whole number of connections, at least 1")
            }
            maxPendingHeaders = count
            if let limit = DescriptorLimit.current, count >= limit {
                warnings.append("proxy_max_pending_headers is \(count), not below the open-file limit (\(limit)): connections waiting for a header can take every descriptor before any is shed")
            }
        }
    }

    private static func mappings(_ value: ConfigValue?) throws(Invalid) -> [Int: String] {
        guard let value else { return [:] }
        guard case .table(let table) = value else {
            throw Invalid(option: "proxy_port_mappings", reason: "expected a table like { [15222] = \"c2s\" }, got a \(value.typeName)")
        }
        var mappings: [Int: String] = [:]
        if !table.array.isEmpty {
            // `{ "c2s" }` maps port 1: almost certainly a mistake.
            throw Invalid(option: "proxy_port_mappings", reason: "expected port = service pairs like { [15222] = \"c2s\" }, found a plain list")
        }
        for (key, target) in table.map {
            let port: Int?
            switch key {
            case .integer(let integer): port = integer
            case .string(let string): port = Int(string)
            }
            guard let port, (1 ... 65535).contains(port) else {
                let written = switch key {
                case .integer(let integer): "\(integer)"
                case .string(let string): "\"\(string)\""
                }
                throw Invalid(option: "proxy_port_mappings", reason: "\(written) is not a port number (1-65535)")
            }
            guard let service = target.stringValue, !service.isEmpty else {
                throw Invalid(option: "proxy_port_mappings", reason: "port \(port) must map to a service name (a string)")
            }
            mappings[port] = service
        }
        return mappings
    }

    private static func portList(_ value: ConfigValue, option: String) throws(Invalid) -> [Int] {
        let items: [ConfigValue]
        switch value {
        case .table(let table): items = table.array
        default: items = [value]
        }
        var ports: [Int] = []
        for item in items {
            guard let port = item.integerValue, (1 ... 65535).contains(port) else {
                throw Invalid(option: option, reason: "expected a list of port numbers (1-65535)")
            }
            if !ports.contains(port) { ports.append(port) }
        }
        return ports
    }

    private static func trusted(_ value: ConfigValue?) throws(Invalid) -> TrustedProxies {
        guard let value else { return .default }
        let entries: [String]
        switch value {
        case .string(let single):
            entries = [single]
        case .table(let table):
            var list: [String] = []
            for item in table.array {
                guard let entry = item.stringValue else {
                    throw Invalid(option: "proxy_trusted_proxies", reason: "expected addresses or networks as strings, found a \(item.typeName)")
                }
                list.append(entry)
            }
            // Set members sorted, as `ConfigValue.stringList()` orders them (Lua's own order changes
            // from run to run); unlike it, keys not set to true are skipped here, and the check
            // below refuses a table that leaves no entry.
            var members: [String] = []
            for case (.string(let key), .boolean(true)) in table.map { members.append(key) }
            list += members.sorted()
            // Only `{}` trusts everyone; a table whose entries all go unused must not.
            if list.isEmpty && !table.isEmpty {
                throw Invalid(option: "proxy_trusted_proxies", reason: "no entry is an address or network (the set form needs [\"10.0.0.0/8\"] = true); write {} to trust every peer")
            }
            entries = list
        default:
            throw Invalid(option: "proxy_trusted_proxies", reason: "expected a list like { \"127.0.0.1\", \"10.0.0.0/8\" }")
        }
        do {
            return try TrustedProxies(entries)
        } catch {
            throw Invalid(option: "proxy_trusted_proxies", reason: error.description)
        }
    }
}

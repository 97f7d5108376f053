import NetHostConfig
import NetHostCore

/// Where each service listens: `NAME_ports` / `NAME_interfaces` from the
/// config, else `interfaces`, else what the service asked for, else everywhere.
public struct ListenPlan: Sendable {
    public struct Entry: Sendable, Hashable {
        public let service: String
        public let interface: String
        public let port: Int

        public var address: ListenAddress { ListenAddress(interface: interface, port: port) }
    }

    public var entries: [Entry] = []
    public var problems: [String] = []
    /// Entries of two services that need the same socket, described as `run` logs
    /// them when it opens the ports (only the first service gets the port). Not part
    /// of ``problems``, which `run` logs before it opens the ports.
    public var clashes: [String] {
        var accepted: [Entry] = []
        var result: [String] = []
        for entry in entries {
            let clash = accepted.first { $0.address.needsSameSocket(as: entry.address) }
            guard let clash else {
                accepted.append(entry)
                continue
            }
            if clash.service != entry.service {
                result.append(ListenError.clash(entry.service, with: clash.service,
                                                interface: entry.interface, port: entry.port).description)
            }
        }
        return result
    }

    /// Services that a PROXY port hands its connections to and that also listen
    /// on their own default ports: there clients reach them without the load
    /// balancer and its rules, and without a PROXY header (Prosody does the same,
    /// so it is legal, but rarely meant). `run` logs these as warnings; `check`
    /// reports them. Setting `NAME_ports`, even to `{}`, says it is meant.
    public var bypasses: [String] {
        var result: [String] = []
        var reported: Set<String> = []
        for entry in entries {
            guard let target = handOverTargets[entry], servicesOnDefaultPorts.contains(target),
                  reported.insert(target).inserted else { continue }
            let own = entries.filter { $0.service == target }
            let ports = Set(own.map(\.port)).sorted().map(String.init).joined(separator: ", ")
            let interfaces = own.map(\.interface).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
            result.append("service '\(target)' is reached through the PROXY port \(entry.port), and also listens on its "
                + "own default port \(ports) (\(interfaces.joined(separator: ", "))), where clients bypass the proxy; "
                + "set \(target)_ports = {} to serve it only through the proxy, or list its ports to keep both")
        }
        return result
    }

    /// The service each PROXY port entry hands its connections to.
    private var handOverTargets: [Entry: String] = [:]
    /// Services listening where they asked to (`default_port`), no `NAME_ports` set.
    private var servicesOnDefaultPorts: Set<String> = []

    public init(services: [NetService], options: any OptionSource) {
        for service in services {
            guard let ports = ports(of: service, options: options) else { continue }
            guard let interfaces = interfaces(of: service, options: options) else { continue }
            if !ports.isEmpty, options.value(ListenOptions.ports.named(service.name)) == nil {
                servicesOnDefaultPorts.insert(service.name)
            }
            for port in ports {
                for interface in interfaces {
                    let entry = Entry(service: service.name, interface: interface, port: port)
                    entries.append(entry)
                    if case .pipeline(let pipeline) = service.handling, let target = pipeline.handOverTarget(forPort: port) {
                        handOverTargets[entry] = target
                    }
                }
            }
        }
    }

    private mutating func ports(of service: NetService, options: any OptionSource) -> [Int]? {
        let option = ListenOptions.ports.named(service.name)
        guard let value = options.value(option) else { return service.defaultPorts }
        var ports: [Int] = []
        let items: [ConfigValue]
        switch value {
        case .table(let table): items = table.array
        default: items = [value]
        }
        for item in items {
            guard let port = item.integerValue, (0 ... 65535).contains(port) else {
                problems.append("\(option.name): \(Self.describe(item)) is not a port number (0-65535)")
                continue
            }
            ports.append(port)
        }
        return ports
    }

    /// Prosody's portmanager order: the service's own option, then, for a private
    /// service, `local_interfaces` (so an admin service stays local however
    /// `interfaces` is set), then `interfaces`, then what the service asked for.
    /// nil, with a problem, when the option that applies is not a list of addresses:
    /// the service then listens nowhere rather than somewhere it was not meant to.
    private mutating func interfaces(of service: NetService, options: any OptionSource) -> [String]? {
        do throws(OptionValueError) {
            if let specific = try options.stringList(ListenOptions.serviceInterfaces.named(service.name)) { return specific }
            if service.isPrivate { return try options.stringList(ListenOptions.localInterfaces) ?? Self.localInterfaces }
            if let general = try options.stringList(ListenOptions.interfaces) { return general }
        } catch {
            problems.append("\(error); service '\(service.name)' does not listen")
            return nil
        }
        if let defaults = service.defaultInterfaces { return defaults }
        return ["*", "::"]
    }

    static let localInterfaces = ["127.0.0.1", "::1"]

    private static func describe(_ value: ConfigValue) -> String {
        switch value {
        case .string(let string): return "\"\(string)\""
        case .integer(let integer): return "\(integer)"
        case .number(let number): return "\(number)"
        case .boolean(let boolean): return "\(boolean)"
        case .table: return "a table"
        }
    }
}

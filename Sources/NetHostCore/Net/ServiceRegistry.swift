import NIOConcurrencyHelpers

/// The services modules have provided, by name. Read from any event loop
/// (net_proxy looks its target up per connection), written by the module manager.
public final class ServiceRegistry: Sendable {
    private let services = NIOLockedValueBox<[String: NetService]>([:])

    public init() {}

    public struct DuplicateService: Error, CustomStringConvertible, Sendable {
        public let name: String
        public let existingModule: String
        public let newModule: String
        public var existingHost = "*"
        public var newHost = "*"
        public var description: String {
            "module \(Self.describe(newModule, newHost)) provides a service named '\(name)', which module "
                + "\(Self.describe(existingModule, existingHost)) already provides (services are process-wide: one per name)"
        }

        private static func describe(_ module: String, _ host: String) -> String {
            host == "*" ? "'\(module)'" : "'\(module)' on host '\(host)'"
        }
    }

    public func add(_ service: NetService) throws(DuplicateService) {
        let existing: NetService? = services.withLockedValue { services in
            if let existing = services[service.name] { return existing }
            services[service.name] = service
            return nil
        }
        if let existing {
            throw DuplicateService(
                name: service.name, existingModule: existing.module, newModule: service.module,
                existingHost: existing.host, newHost: service.host
            )
        }
    }

    /// Replaces a service of the same name (a module changing its ports on reload).
    public func replace(_ service: NetService) {
        services.withLockedValue { $0[service.name] = service }
    }

    public func service(named name: String) -> NetService? {
        services.withLockedValue { $0[name] }
    }

    /// Removes every service a module provided on a host ("*": the global
    /// module); returns their names.
    @discardableResult
    public func removeServices(of module: String, host: String = "*") -> [String] {
        services.withLockedValue { services in
            let names = services.values.filter { $0.module == module && $0.host == host }.map(\.name)
            for name in names { services[name] = nil }
            return names
        }
    }

    /// Removes the service of this name if that module on that host provided it.
    @discardableResult
    public func removeService(named name: String, module: String, host: String) -> Bool {
        services.withLockedValue { services in
            guard let service = services[name], service.module == module, service.host == host else { return false }
            services[name] = nil
            return true
        }
    }

    public var all: [NetService] {
        services.withLockedValue { Array($0.values) }.sorted { $0.name < $1.name }
    }
}

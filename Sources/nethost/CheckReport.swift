import Foundation

/// What `nethost check` found, printed as text for people or as JSON for tools
/// (`--format json`): the same facts either way.
struct CheckReport: Encodable {
    struct Service: Encodable {
        let name: String
        let module: String
        let host: String
        /// "127.0.0.1:7777", "[::1]:7777".
        let listens: [String]
    }

    struct Options: Encodable {
        var used: [String] = []
        var accepted: [String] = []
        var unknown: [String] = []
    }

    var config: String
    /// Nil when loading stopped at the first problem.
    var modules: [String]?
    var hostModules: [String: [String]] = [:]
    var services: [Service] = []
    var options = Options()
    var notes: [String] = []
    var warnings: [String] = []
    var problems: [String] = []
    var ok: Bool { problems.isEmpty }

    enum CodingKeys: String, CodingKey {
        case config, modules, hostModules = "host_modules", services, options, notes, warnings, problems, ok
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(config, forKey: .config)
        try container.encode(modules, forKey: .modules)
        try container.encode(hostModules, forKey: .hostModules)
        try container.encode(services, forKey: .services)
        try container.encode(options, forKey: .options)
        try container.encode(notes, forKey: .notes)
        try container.encode(warnings, forKey: .warnings)
        try container.encode(problems, forKey: .problems)
        try container.encode(ok, forKey: .ok)
    }

    var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    var text: String {
        var lines = ["config: \(config)"]
        if let modules {
            lines.append("modules loaded: \(modules.isEmpty ? "none" : modules.joined(separator: ", "))")
        } else {
            lines.append("modules loaded: none (loading stopped at the first problem below)")
        }
        for (host, names) in hostModules.sorted(by: { $0.key < $1.key }) where !names.isEmpty {
            lines.append("modules loaded on \(host): \(names.joined(separator: ", "))")
        }
        for service in services {
            let provider = service.host == "*" ? service.module : "\(service.module) on \(service.host)"
            lines.append("service \(service.name) (module \(provider)): \(service.listens.isEmpty ? "no ports" : service.listens.joined(separator: ", "))")
        }
        if !options.used.isEmpty { lines.append("options used: \(options.used.joined(separator: ", "))") }
        if !options.accepted.isEmpty { lines.append("accepted, not used by NetHost: \(options.accepted.joined(separator: ", "))") }
        if !options.unknown.isEmpty { lines.append("unknown options (typo?): \(options.unknown.joined(separator: ", "))") }
        lines += notes.map { "note: \($0)" }
        lines += warnings.map { "warning: \($0)" }
        if problems.isEmpty {
            lines.append("no problems found")
        } else {
            lines.append("\(problems.count) problem\(problems.count == 1 ? "" : "s"):")
            lines += problems.map { "  - \($0)" }
        }
        return lines.joined(separator: "\n")
    }
}

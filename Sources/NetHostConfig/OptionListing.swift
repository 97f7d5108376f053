/// The registry as `nethost check --options` prints it: each group under its
/// title, each option with its type, default and scope on one line and its help
/// on the next. Options that differ only in name (Prosody's accepted ones) share
/// one entry; groups of options NetHost only accepts come last.
public struct OptionListing: Sendable {
    public let text: String

    public init(registry: OptionRegistry) {
        var lines = [
            "Options NetHost knows, by the part of NetHost that reads them. \"global\": set it in the global",
            "section only. <service> stands for the name of any service a module provides.",
        ]
        let onlyAccepted = { (group: OptionRegistry.Group) in
            group.serviceOptions.isEmpty && group.options.allSatisfy { $0.use == .acceptedNotUsed }
        }
        let groups = registry.groups.filter { !onlyAccepted($0) } + registry.groups.filter(onlyAccepted)
        for group in groups where !(group.options.isEmpty && group.serviceOptions.isEmpty) {
            lines.append("")
            lines.append(group.title)
            for entry in Self.entries(group) {
                lines.append("  \(entry.names.joined(separator: ", ")): \(entry.summary)")
                lines.append("      \(entry.help)")
            }
        }
        lines.append("")
        lines.append("Lua modules read options of their own (module:get_option and the like); nethost check counts")
        lines.append("those read while the modules load as used.")
        text = lines.joined(separator: "\n")
    }

    private struct Entry {
        var names: [String]
        let summary: String
        let help: String
    }

    private static func entries(_ group: OptionRegistry.Group) -> [Entry] {
        var entries: [Entry] = []
        let all = group.options.map { ($0.name, summary($0.type, $0.defaultValue, $0.scope), $0.help) }
            + group.serviceOptions.map { ($0.displayName, summary($0.type, $0.defaultValue, $0.scope), $0.help) }
        for (name, summary, help) in all {
            if let last = entries.last, last.summary == summary, last.help == help {
                entries[entries.count - 1].names.append(name)
            } else {
                entries.append(Entry(names: [name], summary: summary, help: help))
            }
        }
        return entries
    }

    private static func summary(_ type: OptionType, _ defaultValue: String?, _ scope: OptionDeclaration.Scope) -> String {
        var parts = [type.description]
        if let defaultValue { parts.append("default \(defaultValue)") }
        if scope == .global { parts.append("global") }
        return parts.joined(separator: "; ")
    }
}

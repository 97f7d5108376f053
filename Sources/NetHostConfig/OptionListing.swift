/// The registry as `nethost check --options` prints it: each group under its
/// title, each option with its type, default and scope on one line and its help
/// on the next. Options that differ only in name (Prosody's accepted ones) share
/// one entry; groups of options NetHost only accepts come last.
public struct OptionListing: Sendable {
    public let text: String
    /// The same entries as a Markdown page: docs/configuration.md is this, written by
    /// `make docs` (`nethost check --options --format markdown`).
    public let markdown: String

    public init(registry: OptionRegistry) {
        markdown = Self.markdown(registry)
        var lines = [
            "Options NetHost knows, by the part of NetHost that reads them. \"global\": set it in the global",
            "section only. <service> stands for the name of any service a module provides. \"reload\": what a",
            "reload (SIGHUP) does with a changed value: applied; new connections only (open ones keep the old",
            "value); needs a restart (the value of the start stays in force, and the reload warns).",
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
        lines.append("those read while the modules load as used. After a reload module:get_option returns the new value;")
        lines.append("a value a module read while it loaded stays until the module reloads (its file changed) or its")
        lines.append("config-reloaded hook reads it again.")
        text = lines.joined(separator: "\n")
    }

    /// Groups in the order the text listing uses: those NetHost reads, then those it only accepts.
    private static func orderedGroups(_ registry: OptionRegistry) -> [OptionRegistry.Group] {
        let onlyAccepted = { (group: OptionRegistry.Group) in
            group.serviceOptions.isEmpty && group.options.allSatisfy { $0.use == .acceptedNotUsed }
        }
        return (registry.groups.filter { !onlyAccepted($0) } + registry.groups.filter(onlyAccepted))
            .filter { !($0.options.isEmpty && $0.serviceOptions.isEmpty) }
    }

    /// One heading per option (so `configuration.md#proxy_header_timeout` links to it),
    /// as nginx's reference pages give one per directive: its type, default and section
    /// on one line, its help below.
    private static func markdown(_ registry: OptionRegistry) -> String {
        var lines = [
            "# Configuration reference",
            "",
            "<!-- Generated from the option registry by `make docs` (`nethost check --options --format markdown`).",
            "     Do not edit: change the option's declaration in the code, then run `make docs`. -->",
            "",
            "Every option NetHost knows, by the part of NetHost that reads it, as `nethost check --options`",
            "lists them. **Section**: *global* options mean something only in the global section (above",
            "the first `VirtualHost` or `Component`; under a host they do nothing and the config loader",
            "warns); *any* options may also be set under a host, whose value wins there. `<service>`",
            "stands for the name of any service a module provides (`demo_echo_ports`).",
            "",
            "**Reload** says what a reload (SIGHUP) does with a changed value: *applied* (from the reload on,",
            "NetHost acts on the new value); *new connections only* (connections accepted after the reload get",
            "it, open ones keep the value they started with); *needs a restart* (read at start only: the value",
            "of the start stays in force, and the reload logs a warning naming the option); *not used*.",
            "",
            "How the file itself is read (sections, `Include`, `ENV_`, the sandbox) and the limits",
            "explained: [config-file.md](config-file.md). What a reload (SIGHUP) applies:",
            "[install-and-operate.md](install-and-operate.md#reload-sighup).",
            "",
            "Contents: " + orderedGroups(registry).map { "[\($0.title)](#\(anchor($0.title)))" }.joined(separator: " · "),
        ]
        for group in orderedGroups(registry) {
            lines.append("")
            lines.append("## \(group.title)")
            for entry in markdownEntries(group) {
                lines.append("")
                lines.append("### " + entry.names.map { "`\($0)`" }.joined(separator: ", "))
                lines.append("")
                var facts = ["**Type:** \(entry.type)"]
                if let defaultValue = entry.defaultValue {
                    facts.append("**Default:** " + (looksLikeCode(defaultValue) ? "`\(defaultValue)`" : defaultValue))
                }
                facts.append("**Section:** " + (entry.scope == .global ? "global" : "any"))
                facts.append("**Reload:** \(entry.reload)")
                lines.append(facts.joined(separator: " · "))
                lines.append("")
                lines.append(entry.help)
            }
        }
        lines.append("")
        lines.append("## Options of Lua modules")
        lines.append("")
        lines.append("Lua modules read options of their own (`module:get_option` and the like); `nethost check`")
        lines.append("counts those read while the modules load as used. The shipped modules' options are described")
        lines.append("in their files under `modules/` and in the example config. After a reload `module:get_option`")
        lines.append("returns the new value; a value a module read while it loaded stays in force until the module")
        lines.append("is reloaded (a reload reloads a Lua module whose file changed) or its `config-reloaded` hook reads")
        lines.append("it again.")
        return lines.joined(separator: "\n") + "\n"
    }

    /// GitHub's anchor for a heading: lower case, spaces to hyphens, other punctuation dropped.
    private static func anchor(_ title: String) -> String {
        String(title.lowercased().compactMap { character -> Character? in
            if character == " " { return "-" }
            return character.isLetter || character.isNumber || character == "-" || character == "_" ? character : nil
        })
    }

    /// A default written as a config would write it (`5`, `{ "127.0.0.1" }`, `"*console"`,
    /// `true`) is shown as code; one in words ("the mapped ports") is not.
    private static func looksLikeCode(_ value: String) -> Bool {
        guard let first = value.first else { return false }
        return first.isNumber || first == "{" || first == "\"" || first == "-" || value == "true" || value == "false"
    }

    private struct MarkdownEntry {
        var names: [String]
        let type: String
        let defaultValue: String?
        let scope: OptionDeclaration.Scope
        let reload: OptionDeclaration.Reload
        let help: String
    }

    private static func markdownEntries(_ group: OptionRegistry.Group) -> [MarkdownEntry] {
        var entries: [MarkdownEntry] = []
        let all = group.options.map {
            MarkdownEntry(names: [$0.name], type: $0.type.description, defaultValue: $0.defaultValue, scope: $0.scope, reload: $0.reload, help: $0.help)
        } + group.serviceOptions.map {
            MarkdownEntry(names: [$0.displayName], type: $0.type.description, defaultValue: $0.defaultValue, scope: $0.scope, reload: $0.reload, help: $0.help)
        }
        for entry in all {
            if let last = entries.last, last.type == entry.type, last.defaultValue == entry.defaultValue,
               last.scope == entry.scope, last.reload == entry.reload, last.help == entry.help {
                entries[entries.count - 1].names.append(contentsOf: entry.names)
            } else {
                entries.append(entry)
            }
        }
        return entries
    }

    private struct Entry {
        var names: [String]
        let summary: String
        let help: String
    }

    private static func entries(_ group: OptionRegistry.Group) -> [Entry] {
        var entries: [Entry] = []
        let all = group.options.map { ($0.name, summary($0.type, $0.defaultValue, $0.scope, $0.reload), $0.help) }
            + group.serviceOptions.map { ($0.displayName, summary($0.type, $0.defaultValue, $0.scope, $0.reload), $0.help) }
        for (name, summary, help) in all {
            if let last = entries.last, last.summary == summary, last.help == help {
                entries[entries.count - 1].names.append(name)
            } else {
                entries.append(Entry(names: [name], summary: summary, help: help))
            }
        }
        return entries
    }

    private static func summary(
        _ type: OptionType, _ defaultValue: String?, _ scope: OptionDeclaration.Scope, _ reload: OptionDeclaration.Reload
    ) -> String {
        var parts = [type.description]
        if let defaultValue { parts.append("default \(defaultValue)") }
        if scope == .global { parts.append("global") }
        parts.append("reload: \(reload)")
        return parts.joined(separator: "; ")
    }
}

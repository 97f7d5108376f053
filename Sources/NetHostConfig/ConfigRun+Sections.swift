import LuaBridge

/// Sections and options while the config runs.
extension ConfigRun {
    /// How a section is named in messages.
    func describe(section name: String) -> String {
        switch sections[name]?.kind {
        case nil: return "the global section"
        case .virtualHost: return "VirtualHost \"\(name)\""
        case .component: return "Component \"\(name)\""
        }
    }

    /// Creates the global section's bookkeeping. [-0, +0]
    func createGlobalSection(on stack: LuaStack, location: ConfigLocation) {
        sections[Self.globalSection] = Section(kind: nil, location: location)
        createValueTable(Self.globalSection, on: stack)
    }

    /// Opens (or reopens) a host section and makes it current. Errors if the
    /// name is taken by the other kind of section, as Prosody does.
    func openSection(
        _ rawName: String, kind: ConfigSection.Kind, directive: String, on stack: LuaStack
    ) throws(LuaError) -> String {
        let name = ConfigSection.normalizedName(rawName)
        guard !name.isEmpty, name != Self.globalSection else {
            throw failure(.runtime, "\(directive) needs a host name, not \"\(rawName)\"", stack)
        }
        let here = location(stack)
        if let existing = sections[name] {
            switch (existing.kind, kind) {
            case (.virtualHost?, .component):
                throw failure(.runtime, "Component \"\(name)\" clashes with the VirtualHost \"\(name)\" defined at \(existing.location); for services use a sub-domain like conference.\(name)", stack)
            case (.component?, .virtualHost):
                throw failure(.runtime, "VirtualHost \"\(name)\" clashes with the Component \"\(name)\" defined at \(existing.location); for services use a sub-domain like conference.\(name)", stack)
            case (.virtualHost?, .virtualHost), (.component?, .component), (nil, _):
                let what = kind == .virtualHost ? "VirtualHost" : "Component"
                diagnostics.append(ConfigDiagnostic(
                    location: here,
                    message: "\(what) \"\(name)\" is opened again (first at \(existing.location)); its options are added to it, as in Prosody",
                    severity: .note
                ))
            }
        } else {
            sections[name] = Section(kind: kind, location: here)
            sectionOrder.append(name)
            createValueTable(name, on: stack)
        }
        currentSection = name
        return name
    }

    /// Sets the module of a component section (`Component "name" "module"`).
    func setComponentModule(_ module: String, section name: String) {
        sections[name]?.kind = .component(module: module)
    }

    /// Sets `section.name` to the value at `valueIndex` (nil removes the option),
    /// warning about an option set twice and a global option under a host. [-0, +0]
    func setOption(
        _ name: String, valueAt valueIndex: Int32, section: String, location: ConfigLocation, on stack: LuaStack
    ) {
        let valueIndex = stack.absolute(valueIndex)
        stack.push(optionValues)
        stack.rawGetField(section, from: -1)
        stack.pushCopy(of: valueIndex)
        stack.rawSetField(name, in: -2)
        stack.pop(2)

        guard !stack.isNil(at: valueIndex) else {
            sections[section]?.options[name] = nil
            return
        }
        if let previous = sections[section]?.options[name] {
            diagnostics.append(ConfigDiagnostic(
                location: location,
                message: "option '\(name)' is set twice in \(describe(section: section)) (first at \(previous)); the later value wins"
            ))
        }
        if section != Self.globalSection, registry.isGlobalOnly(name) {
            diagnostics.append(ConfigDiagnostic(
                location: location,
                message: "option '\(name)' only works in the global section and has no effect under \(describe(section: section)); move it above the first VirtualHost or Component"
            ))
        }
        sections[section]?.options[name] = location
    }

    /// Pushes the current raw value of an option of the current section, or nil. [-0, +1]
    func pushOption(_ name: String, on stack: LuaStack) {
        stack.push(optionValues)
        stack.rawGetField(currentSection, from: -1)
        stack.rawGetField(name, from: -1)
        stack.insert(at: -3)
        stack.pop(2)
    }

    /// [-0, +0]
    private func createValueTable(_ section: String, on stack: LuaStack) {
        stack.push(optionValues)
        stack.newTable()
        stack.rawSetField(section, in: -2)
        stack.pop()
    }

    /// Turns the options, as the config left them, into a `Configuration`.
    func makeConfiguration(on stack: LuaStack) throws(ConfigError) -> Configuration {
        var configuration = Configuration()
        configuration.globalOptions = try options(of: Self.globalSection, on: stack)
        for name in sectionOrder {
            guard let section = sections[name], let kind = section.kind else { continue }
            configuration.sections.append(ConfigSection(
                name: name,
                kind: kind,
                location: section.location,
                options: try options(of: name, on: stack)
            ))
        }
        return configuration
    }

    private func options(of section: String, on stack: LuaStack) throws(ConfigError) -> [String: ConfigOption] {
        let saved = stack.top
        defer { stack.setTop(saved) }
        stack.push(optionValues)
        stack.rawGetField(section, from: -1)
        let table = stack.top
        var result: [String: ConfigOption] = [:]
        // In the order they were written, so the first bad one is reported.
        let written = (sections[section]?.options ?? [:]).sorted {
            ($0.value.file, $0.value.line, $0.key) < ($1.value.file, $1.value.line, $1.key)
        }
        for (name, location) in written {
            stack.rawGetField(name, from: table)
            defer { stack.pop() }
            let value: ConfigValue?
            do {
                value = try stack.configValue(at: -1)
            } catch {
                throw ConfigError(.invalidValue(option: name), at: location, message: "option '\(name)': \(error.description)")
            }
            if let value {
                result[name] = ConfigOption(value: value, location: location)
            }
        }
        return result
    }
}

import LuaBridge

/// The environment config chunks run in: Prosody's config DSL.
///
/// Reading a name gives, in order: `ENV_NAME` (the environment variable NAME),
/// a directive (`VirtualHost`, `Include`, ...), `Lua` (the safe globals, as in
/// Prosody 13), the option's current value in the current section, and last
/// the safe global (`string`, `table`, `pairs`, ...). Assigning a name sets an
/// option in the current section.
extension ConfigRun {
    /// Creates the option store, the directives and the environment table. [-0, +0]
    func installEnvironment(on stack: LuaStack) {
        stack.newTable()
        optionValues = stack.makeReference()

        stack.newTable()
        installDirectives(in: -1, on: stack)
        directives = stack.makeReference()

        stack.newTable()  // the environment: always empty, so every access reaches the metatable
        stack.newTable()
        stack.setFunction("__index", in: -1) { [self] stack in try index(stack) }
        stack.setFunction("__newindex", in: -1) { [self] stack in try newIndex(stack) }
        stack.push(false)
        stack.rawSetField("__metatable", in: -2)
        stack.setMetatable(of: -2)
        environmentTable = stack.makeReference()
    }

    /// `__index(env, key)`.
    private func index(_ stack: LuaStack) throws -> Int32 {
        guard stack.type(at: 2) == .string, let name = stack.toString(at: 2) else {
            stack.pushNil()
            return 1
        }
        if name.hasPrefix("ENV_") {
            stack.push(environment[String(name.dropFirst(4))])
            return 1
        }
        if name == "Lua" {
            stack.pushGlobalTable()
            return 1
        }
        stack.push(directives)
        if stack.rawGetField(name, from: -1) != .nil { return 1 }
        pushOption(name, on: stack)
        if !stack.isNil(at: -1) { return 1 }
        stack.pushGlobalTable()
        stack.rawGetField(name, from: -1)
        return 1
    }

    /// `__newindex(env, key, value)`: an option assignment.
    private func newIndex(_ stack: LuaStack) throws -> Int32 {
        guard stack.type(at: 2) == .string, let name = stack.toString(at: 2) else {
            throw failure(.runtime, "an option name must be a string, not a \(stack.typeName(at: 2))", stack)
        }
        try checkAssignable(name, valueAt: 3, on: stack)
        setOption(name, valueAt: 3, section: currentSection, location: location(stack), on: stack)
        return 0
    }

    /// Refuses assignments to directive names and values that cannot be options.
    func checkAssignable(_ name: String, valueAt index: Int32, on stack: LuaStack) throws(LuaError) {
        stack.push(directives)
        let isDirective = stack.rawGetField(name, from: -1) != .nil
        stack.pop(2)
        if isDirective || name == "Lua" {
            throw failure(.runtime, "'\(name)' is a config directive and cannot be set as an option", stack)
        }
        do {
            _ = try stack.configValue(at: index)
        } catch {
            throw failure(.invalidValue(option: name), "option '\(name)': \(error.description)", stack)
        }
    }
}

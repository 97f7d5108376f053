import LuaBridge

/// The config directives: `VirtualHost` / `Host`, `Component`, `Include` and
/// the file readers, with Prosody's lowercase aliases.
extension ConfigRun {
    /// Sets every directive as a field of the table at `table`. [-0, +0]
    func installDirectives(in table: Int32, on stack: LuaStack) {
        let table = stack.absolute(table)
        for name in ["VirtualHost", "Host", "host"] {
            stack.setFunction(name, in: table) { [self] stack in try virtualHost(stack, directive: name) }
        }
        for name in ["Component", "component"] {
            stack.setFunction(name, in: table) { [self] stack in try component(stack, directive: name) }
        }
        for name in ["Include", "include"] {
            stack.setFunction(name, in: table) { [self] stack in try include(stack, directive: name) }
        }
        stack.setFunction("FileContents", in: table) { [self] stack in
            let contents = try readFile(stack, directive: "FileContents")
            stack.push(bytes: contents)
            return 1
        }
        stack.setFunction("FileLine", in: table) { [self] stack in
            let contents = try readFile(stack, directive: "FileLine")
            stack.push(bytes: Self.lines(of: contents).first ?? [])
            return 1
        }
        stack.setFunction("FileLines", in: table) { [self] stack in
            let lines = Self.lines(of: try readFile(stack, directive: "FileLines"))
            stack.newTable(arrayCapacity: Int32(clamping: lines.count))
            for (offset, line) in lines.enumerated() {
                stack.push(bytes: line)
                stack.rawSetIndex(offset + 1, in: -2)
            }
            return 1
        }
        stack.setFunction("Credential", in: table) { [self] stack in
            let name = try stack.checkString(1, function: "Credential")
            guard let directory = environment["CREDENTIALS_DIRECTORY"], !directory.isEmpty else {
                throw failure(.runtime, "Credential() needs the CREDENTIALS_DIRECTORY environment variable", stack)
            }
            let path = ConfigFiles.resolve(name, relativeTo: directory.hasSuffix("/") ? directory : directory + "/")
            stack.push(bytes: try read(path, directive: "Credential", stack))
            return 1
        }
        stack.setFunction("RunScript", in: table) { [self] stack in
            throw failure(.runtime, "RunScript is not supported: NetHost runs the config without file or process access", stack)
        }
    }

    // MARK: Sections

    /// `VirtualHost "name"`, optionally followed by `{ options }`.
    private func virtualHost(_ stack: LuaStack, directive: String) throws -> Int32 {
        let name = try openSection(hostName(stack, directive: directive), kind: .virtualHost, directive: directive, on: stack)
        stack.push(function: { [self] stack in
            try setOptions(fromTableAt: 1, section: name, directive: "\(directive) \"\(name)\"", on: stack)
            return 0
        })
        return 1
    }

    /// `Component "name"`, optionally followed by `"module"` and/or `{ options }`.
    private func component(_ stack: LuaStack, directive: String) throws -> Int32 {
        let name = try openSection(hostName(stack, directive: directive), kind: .component(module: nil), directive: directive, on: stack)
        let described = "\(directive) \"\(name)\""
        stack.push(function: { [self] stack in
            switch stack.type(at: 1) {
            case .string:
                setComponentModule(stack.toString(at: 1) ?? "", section: name)
                stack.push(function: { [self] stack in
                    try setOptions(fromTableAt: 1, section: name, directive: described, on: stack)
                    return 0
                })
                return 1
            case .table:
                try setOptions(fromTableAt: 1, section: name, directive: described, on: stack)
                return 0
            default:
                throw failure(.runtime, "\(described) expects a module name or a table of options, got \(stack.typeName(at: 1))", stack)
            }
        })
        return 1
    }

    private func hostName(_ stack: LuaStack, directive: String) throws(LuaError) -> String {
        guard stack.type(at: 1) == .string, let name = stack.toString(at: 1) else {
            throw failure(.runtime, "\(directive) needs a host name (a string), got \(stack.typeName(at: 1))", stack)
        }
        return name
    }

    /// The `{ key = value, ... }` form after a section directive: sets the
    /// options in that section and returns to the global one, as Prosody does.
    private func setOptions(fromTableAt index: Int32, section: String, directive: String, on stack: LuaStack) throws {
        guard stack.type(at: index) == .table else {
            throw failure(.runtime, "\(directive) expects a table of options, got \(stack.typeName(at: index))", stack)
        }
        currentSection = Self.globalSection
        let here = location(stack)
        try stack.forEachPair(in: index) {
            guard stack.type(at: -2) == .string, let name = stack.toString(at: -2) else {
                throw failure(.runtime, "\(directive): an option name must be a string, not a \(stack.typeName(at: -2))", stack)
            }
            try checkAssignable(name, valueAt: -1, on: stack)
            setOption(name, valueAt: -1, section: section, location: here, on: stack)
            return true
        }
    }

    // MARK: Include

    /// The deepest nesting of Include, a backstop behind the cycle check.
    static let includeDepthLimit = 32

    /// `Include "path"`: relative to the including file; `*` and `?` expand to
    /// the matching files in sorted order. Each file runs in the same settings,
    /// starting in the current section; the section is restored afterwards, so
    /// a host opened in an included file does not swallow what follows the Include.
    private func include(_ stack: LuaStack, directive: String) throws -> Int32 {
        let pattern = try stack.checkString(1, function: directive)
        let path = ConfigFiles.resolve(pattern, relativeTo: callingDirectory(stack))
        if ConfigFiles.isPattern(pattern) {
            let files: [String]
            do {
                files = try ConfigFiles.expand(path)
            } catch {
                throw failure(.runtime, "\(directive) \"\(pattern)\": \(error.description)", stack)
            }
            for file in files {
                try include(file: file, stack: stack)
            }
        } else {
            try include(file: path, stack: stack)
        }
        return 0
    }

    private func include(file path: String, stack: LuaStack) throws(LuaError) {
        let canonicalPath = ConfigFiles.canonical(path)
        if let start = includeStack.firstIndex(where: { $0.canonicalPath == canonicalPath }) {
            let chain = (includeStack[start...].map(\.path) + [path]).joined(separator: " -> ")
            throw failure(.runtime, "Include cycle: \(chain)", stack)
        }
        guard includeStack.count < Self.includeDepthLimit else {
            throw failure(.runtime, "Include nested more than \(Self.includeDepthLimit) deep at \"\(path)\"", stack)
        }
        let contents: [UInt8]
        do {
            contents = try ConfigFiles.read(path)
        } catch {
            throw failure(.runtime, "cannot read included file \"\(path)\": \(error.description)", stack)
        }
        // As in Prosody, an included file is a config file of its own: it starts in
        // the global section (Debian's stock config includes conf.d/*.cfg.lua after
        // its VirtualHost "localhost"), and the includer's section resumes after it.
        let savedSection = currentSection
        currentSection = Self.globalSection
        defer { currentSection = savedSection }
        try run(addSource(path: path), contents: contents, on: stack)
    }

    // MARK: Files

    /// Reads the file named by argument 1, relative to the calling config file.
    private func readFile(_ stack: LuaStack, directive: String) throws -> [UInt8] {
        let name = try stack.checkString(1, function: directive)
        return try read(ConfigFiles.resolve(name, relativeTo: callingDirectory(stack)), directive: directive, stack)
    }

    private func read(_ path: String, directive: String, _ stack: LuaStack) throws(LuaError) -> [UInt8] {
        do {
            return try ConfigFiles.read(path)
        } catch {
            throw failure(.runtime, "\(directive): cannot read \"\(path)\": \(error.description)", stack)
        }
    }

    /// Lines as Lua's `io.lines` gives them: split at "\n", without a last empty
    /// line after a final newline; a "\r" before the "\n" is dropped too.
    static func lines(of contents: [UInt8]) -> [[UInt8]] {
        var lines = contents.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map { line in
            line.last == UInt8(ascii: "\r") ? Array(line.dropLast()) : Array(line)
        }
        if contents.last == UInt8(ascii: "\n") || contents.isEmpty { lines.removeLast() }
        return lines
    }
}

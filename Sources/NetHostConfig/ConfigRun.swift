import LuaBridge

/// Everything one config load keeps while its Lua code runs: the sections and
/// where each option was set (the values themselves stay in Lua until the end,
/// so the config can read and modify them), the files being run, and the
/// warnings so far.
///
/// The Lua functions the run installs hold it strongly; it does not hold the
/// Lua state, so both go away when the loader drops the state.
final class ConfigRun {
    /// The name of the global section, as in Prosody.
    static let globalSection = "*"

    /// A file the config runs: the main file or an included one.
    struct Source {
        /// The path as the user wrote it (main file) or as an Include resolved it.
        let path: String
        /// Its folder, for Include and FileContents relative to it.
        let directory: String
        /// Its real path, to detect Include cycles.
        let canonicalPath: String
        /// The Lua chunk name (without "="), short enough that Lua never truncates it.
        let chunkName: String
    }

    struct Section {
        /// nil for the global section.
        var kind: ConfigSection.Kind?
        var location: ConfigLocation
        /// Where each option currently set was set.
        var options: [String: ConfigLocation] = [:]
    }

    /// A failure raised into Lua from Swift, kept so that its kind and
    /// location survive the trip through Lua's error string.
    struct RaisedFailure {
        let luaMessage: String
        let error: ConfigError
    }

    let environment: [String: String]
    /// Says which options are global-only, to warn about one set under a host.
    let registry: OptionRegistry

    /// The `_ENV` of every config chunk.
    var environmentTable = LuaReference.none
    /// Section name -> { option name -> raw Lua value }.
    var optionValues = LuaReference.none
    /// Directive name -> function.
    var directives = LuaReference.none

    var currentSection = ConfigRun.globalSection
    var sections: [String: Section] = [:]
    /// Host sections in the order they were first opened.
    var sectionOrder: [String] = []
    var diagnostics: [ConfigDiagnostic] = []

    /// Sources by chunk name.
    var sources: [String: Source] = [:]
    /// The files being run, outermost first.
    var includeStack: [Source] = []
    var lastFailure: RaisedFailure?
    /// The file the load started from.
    var mainSource: Source?

    init(environment: [String: String], registry: OptionRegistry) {
        self.environment = environment
        self.registry = registry
    }

    // MARK: Sources

    /// Registers a file under a chunk name Lua will report unchanged.
    func addSource(path: String) -> Source {
        let canonicalPath = ConfigFiles.canonical(path)
        if let known = sources.values.first(where: { $0.path == path && $0.canonicalPath == canonicalPath }) {
            return known
        }
        // Lua cuts chunk names at 59 bytes; keep the end of a long path.
        var base = path
        if base.utf8.count > 56 {
            var tail = ""
            for scalar in path.unicodeScalars.reversed() {
                guard tail.utf8.count + String(scalar).utf8.count <= 44 else { break }
                tail = String(scalar) + tail
            }
            base = "..." + tail
        }
        var chunkName = base
        var counter = 2
        while sources[chunkName] != nil {
            chunkName = "\(base)#\(counter)"
            counter += 1
        }
        let source = Source(
            path: path,
            directory: ConfigFiles.directory(of: path),
            canonicalPath: canonicalPath,
            chunkName: chunkName
        )
        sources[chunkName] = source
        return source
    }

    /// Compiles and runs one file in the config environment. A syntax error is
    /// recorded as such before it travels on as a Lua error.
    func run(_ source: Source, contents: [UInt8], on stack: LuaStack) throws(LuaError) {
        let failure: LuaError? = contents.withUnsafeBytes { bytes -> LuaError? in
            do throws(LuaError) {
                try stack.load(bytes, chunkName: "=" + source.chunkName)
                return nil
            } catch {
                return error
            }
        }
        if let failure {
            let (location, message) = split(failure.message)
            lastFailure = RaisedFailure(
                luaMessage: failure.message,
                error: ConfigError(.syntax, at: location ?? ConfigLocation(file: source.path, line: 0), message: message)
            )
            throw failure
        }
        // [chunk] -> [env, chunk] -> chunk's _ENV = env -> [chunk]
        stack.push(environmentTable)
        stack.insert(at: -2)
        stack.setChunkEnvironment(-2)
        stack.remove(at: -2)
        includeStack.append(source)
        defer { includeStack.removeLast() }
        try stack.call(arguments: 0)
    }

    // MARK: Locations

    /// The innermost config line on the Lua call stack: the statement that
    /// called the current Swift function (skipping C functions such as `pcall`).
    func callSite(_ stack: LuaStack) -> (source: Source, line: Int)? {
        var level: Int32 = 1
        while let frame = stack.location(level: level) {
            level += 1
            if let source = sources[frame.source], frame.line > 0 {
                return (source, frame.line)
            }
        }
        return nil
    }

    func location(_ stack: LuaStack) -> ConfigLocation {
        if let site = callSite(stack) {
            return ConfigLocation(file: site.source.path, line: site.line)
        }
        return ConfigLocation(file: includeStack.last?.path ?? "?", line: 0)
    }

    /// The folder relative paths in the calling file start from.
    func callingDirectory(_ stack: LuaStack) -> String {
        callSite(stack)?.source.directory ?? includeStack.last?.directory ?? ""
    }

    /// Builds the error to throw from a Swift function so that Lua raises it
    /// as "chunk:line: message", and remembers what it means.
    func failure(_ reason: ConfigError.Reason, _ message: String, _ stack: LuaStack) -> LuaError {
        let site = callSite(stack)
        let luaMessage = site.map { "\($0.source.chunkName):\($0.line): \(message)" } ?? message
        let location = site.map { ConfigLocation(file: $0.source.path, line: $0.line) }
        lastFailure = RaisedFailure(luaMessage: luaMessage, error: ConfigError(reason, at: location, message: message))
        return LuaError(kind: .runtime, message: luaMessage)
    }

    /// Splits "chunk:line: message" into a location and the message.
    func split(_ text: String) -> (ConfigLocation?, String) {
        var best: (ConfigLocation, String, Int)?
        for (chunkName, source) in sources where text.hasPrefix(chunkName + ":") {
            guard chunkName.count > best?.2 ?? -1 else { continue }
            let rest = text.dropFirst(chunkName.count + 1)
            let digits = rest.prefix { $0.isASCII && $0.isNumber }
            guard let line = Int(digits), rest.dropFirst(digits.count).hasPrefix(":") else { continue }
            var message = rest.dropFirst(digits.count + 1)
            if message.hasPrefix(" ") { message = message.dropFirst() }
            best = (ConfigLocation(file: source.path, line: line), String(message), chunkName.count)
        }
        if let best { return (best.0, best.1) }
        return (nil, text)
    }

    /// The one `ConfigError` for a Lua error that stopped the run.
    func configError(from error: LuaError) -> ConfigError {
        if let lastFailure, lastFailure.luaMessage == error.message {
            return lastFailure.error
        }
        var (location, message) = split(error.message)
        if location == nil, let traceback = error.traceback {
            // error("...", 0) or an error object: take the innermost config line.
            for line in traceback.split(separator: "\n") {
                let (frame, _) = split(String(line.drop { $0 == "\t" }))
                if let frame {
                    location = frame
                    break
                }
            }
        }
        if message.contains("instruction budget exceeded") {
            message = "the config ran too long (an endless loop?)"
        }
        let reason: ConfigError.Reason = error.kind == .syntax ? .syntax : .runtime
        if let location {
            return ConfigError(reason, at: location, message: message)
        }
        return ConfigError(reason, file: mainSource?.path, line: nil, message: message)
    }
}

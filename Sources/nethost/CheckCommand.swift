import ArgumentParser
import Logging
import NetHost

struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Load the config and the modules without opening ports; print every problem. Exits 0 only if there is none."
    )

    @OptionGroup var common: CommonOptions

    @Flag(name: .long, help: "List every option NetHost knows (type, default, where it may be set, what it does) and exit; no config is read.")
    var options = false

    func run() async throws {
        if options {
            Console.print(OptionListing(registry: Startup.registry).text)
            return
        }
        let startup: Startup
        do {
            startup = try Startup(options: common)
        } catch {
            Console.error("nethost check: \(error)")
            throw ExitCode(1)
        }
        let diagnostics = startup.loaded.diagnostics
        var problems: [String] = diagnostics.filter { $0.severity == .warning }.map { "\($0)" } + startup.compatibilityWarnings
        do {
            let logging = try startup.logging(levelOverride: common.logLevel)
            problems += logging.warnings.map { "log: \($0)" }
            // Opened as `run` opens them (a missing file is created), then closed:
            // a log file `run` could not open is a problem here too.
            _ = try LoggingSystem.makeLogHandlerFactory(logging)
        } catch {
            problems.append("log: \(error)")
        }

        // Module messages go to stderr at warning and above; the report goes to stdout.
        let quiet = Logger(label: "nethost-check") { _ in
            var handler = StreamLogHandler.standardError(label: "nethost-check")
            handler.logLevel = .warning
            return handler
        }
        // Every option name asked for while the modules load (a Lua module's
        // module:get_option* included) counts as used, not as a typo.
        let recording = RecordingOptions(startup.configuration)
        var services: [NetService] = []
        var plan = ListenPlan(services: [], options: recording)
        var modules: [String] = []
        var hostModules: [(String, [String])] = []
        var notes: [String] = diagnostics.filter { $0.severity == .note }.map { "\($0)" }
        var stoppedEarly = false
        do {
            let server = try await NetHostServer(startup.serverOptions(reading: recording), logger: quiet)
            services = server.services.all
            plan = ListenPlan(services: services, options: recording)
            problems += server.problems.all
            notes += server.notes.all
            problems += server.listenProblems()
            problems += plan.clashes
            problems += plan.bypasses
            modules = await server.loadedModules
            for host in startup.configuration.definedHosts {
                hostModules.append((host.name, await server.loadedModules(on: host.name)))
            }
            await server.unload()
        } catch {
            // A module that refuses the config, or a certificate that does not load:
            // `run` would stop here. The options are still worth reporting.
            problems.append("\(error)")
            stoppedEarly = true
        }

        Console.print("config: \(startup.configPath)")
        if stoppedEarly {
            Console.print("modules loaded: none (loading stopped at the first problem below)")
        } else {
            Console.print("modules loaded: \(modules.isEmpty ? "none" : modules.joined(separator: ", "))")
        }
        for (host, names) in hostModules where !names.isEmpty {
            Console.print("modules loaded on \(host): \(names.joined(separator: ", "))")
        }
        for service in services {
            let ports = plan.entries.filter { $0.service == service.name }
                .map { $0.interface.contains(":") ? "[\($0.interface)]:\($0.port)" : "\($0.interface == "*" ? "0.0.0.0" : $0.interface):\($0.port)" }
            let provider = service.host == "*" ? service.module : "\(service.module) on \(service.host)"
            Console.print("service \(service.name) (module \(provider)): \(ports.isEmpty ? "no ports" : ports.joined(separator: ", "))")
        }
        let usage = OptionUsageReport(
            configuration: startup.configuration, registry: Startup.registry,
            services: Set(services.map(\.name)), namesRead: recording.namesAsked
        )
        if !usage.used.isEmpty {
            Console.print("options used: \(usage.used.joined(separator: ", "))")
        }
        if !usage.accepted.isEmpty {
            Console.print("accepted, not used by NetHost: \(usage.accepted.joined(separator: ", "))")
        }
        if !usage.unknown.isEmpty {
            Console.print("unknown options (typo?): \(usage.unknown.map(\.description).joined(separator: ", "))")
        }
        for note in notes { Console.print("note: \(note)") }
        if problems.isEmpty {
            Console.print("no problems found")
            return
        }
        Console.print("\(problems.count) problem\(problems.count == 1 ? "" : "s"):")
        for problem in problems { Console.print("  - \(problem)") }
        throw ExitCode(1)
    }
}

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

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case text, json, markdown
    }

    @Option(name: .long, help: "text for people, json for tools (the same facts; exit status as for text); with --options, markdown prints docs/configuration.md.")
    var format: Format = .text

    func run() async throws {
        if options {
            let listing = OptionListing(registry: Startup.registry)
            switch format {
            case .markdown: Console.write(listing.markdown)
            case .text, .json: Console.print(listing.text)
            }
            return
        }
        if format == .markdown {
            Console.error("nethost check: --format markdown goes with --options (the option reference); use text or json for a config")
            throw ExitCode(2)
        }
        let startup: Startup
        do {
            startup = try Startup(options: common)
        } catch {
            if format == .json {
                Console.print(CheckReport(config: common.config, modules: nil, problems: ["\(error)"]).json)
            } else {
                Console.error("nethost check: \(error)")
            }
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
        var warnings: [String] = []
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
            let findings = server.audit(plan)
            problems += findings.filter { $0.severity == .error }.map(\.message)
            warnings += findings.filter { $0.severity == .warning }.map(\.message)
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

        var report = CheckReport(config: startup.configPath, modules: stoppedEarly ? nil : modules)
        report.hostModules = Dictionary(hostModules.filter { !$0.1.isEmpty }, uniquingKeysWith: { first, _ in first })
        report.services = services.map { service in
            let listens = plan.entries.filter { $0.service == service.name }
                .map { $0.interface.contains(":") ? "[\($0.interface)]:\($0.port)" : "\($0.interface == "*" ? "0.0.0.0" : $0.interface):\($0.port)" }
            return CheckReport.Service(name: service.name, module: service.module, host: service.host, listens: listens)
        }
        let usage = OptionUsageReport(
            configuration: startup.configuration, registry: Startup.registry,
            services: Set(services.map(\.name)), namesRead: recording.namesAsked
        )
        report.options = .init(used: usage.used, accepted: usage.accepted, unknown: usage.unknown.map(\.description))
        report.notes = notes
        report.warnings = warnings
        report.problems = problems
        Console.print(format == .json ? report.json : report.text)
        if !report.ok { throw ExitCode(1) }
    }
}

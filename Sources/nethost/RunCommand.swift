import ArgumentParser
import Foundation
import Logging
import NetHost
import ServiceLifecycle

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run NetHost with a config file (the default)."
    )

    @OptionGroup var common: CommonOptions

    func run() async throws {
        let startup: Startup
        let logging: LoggingConfiguration
        do {
            startup = try Startup(options: common)
            logging = try startup.logging(levelOverride: common.logLevel)
        } catch {
            Console.error("nethost: \(error)")
            throw ExitCode(1)
        }
        let factory = try LoggingSystem.makeLogHandlerFactory(logging)
        LoggingSystem.bootstrap(factory)
        let logger = Logger(label: "nethost")
        for warning in logging.warnings { logger.warning("log: \(warning)") }
        for diagnostic in startup.loaded.diagnostics { logger.warning("\(diagnostic)") }

        let pidFile = startup.configuration.string("pidfile").map { PIDFile(path: startup.resolve($0)) }
        do {
            try pidFile?.write()
        } catch {
            logger.error("\(error)")
            throw ExitCode(1)
        }
        defer { pidFile?.remove() }

        logger.info("NetHost \(NetHostCommand.version) starting with \(startup.configPath)")
        let server = try NetHostServer(startup.serverOptions(), logger: logger)
        server.start()
        logger.info("started; modules loaded: \(server.loadedModules.joined(separator: ", "))")

        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: HostService(server: server, logger: logger))],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await group.run()
        logger.info("stopped")
    }
}

/// Keeps the server running until a graceful shutdown is asked for, then stops it.
struct HostService: Service {
    let server: NetHostServer
    let logger: Logger

    func run() async throws {
        // Returns once SIGTERM or SIGINT asks for a graceful shutdown.
        try? await gracefulShutdown()
        logger.info("stopping: closing listeners, then open connections")
        await server.shutdown()
    }
}

import ArgumentParser
import Foundation
import Logging
import NetHost
import ServiceLifecycle
import UnixSignals

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
        for warning in startup.compatibilityWarnings { logger.warning("\(warning)") }

        let pidFile = startup.configuration.string("pidfile").map { PIDFile(path: startup.resolve($0)) }

        logger.info("NetHost \(NetHostCommand.version) starting with \(startup.configPath)")
        let server = try NetHostServer(startup.serverOptions(), logger: logger)

        // The pidfile and the ports come inside the service group: it traps SIGTERM and
        // SIGINT before it runs its services, so a signal that arrives as soon as a port
        // is open still stops NetHost gracefully (before, it killed the process and left
        // the pidfile behind).
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: HostService(server: server, pidFile: pidFile, logger: logger, common: common))],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        do {
            try await group.run()
        } catch let error as PIDFile.Failure {
            logger.error("\(error)")
            throw ExitCode(1)
        }
        logger.info("stopped")
    }
}

/// Opens the ports, keeps the server running until a graceful shutdown is asked
/// for, then stops it. Writes the pidfile first and removes it at the end.
struct HostService: Service {
    let server: NetHostServer
    let pidFile: PIDFile?
    let logger: Logger
    let common: CommonOptions

    func run() async throws {
        do {
            try pidFile?.write()
        } catch {
            server.shutdownNow()
            throw error
        }
        defer { pidFile?.remove() }
        // Trapped before the ports open: a signal sent as soon as one accepts
        // must not meet the default action, which ends the process.
        let signals = await UnixSignalsSequence(trapping: .sighup, .sigusr1)
        server.start()
        logger.info("started; modules loaded: \(server.loadedModules.joined(separator: ", "))")
        await withTaskGroup(of: Void.self) { tasks in
            tasks.addTask {
                for await signal in signals {
                    if signal == .sigusr1 {
                        server.logStatistics()
                    } else {
                        reload()
                    }
                }
            }
            // Returns once SIGTERM or SIGINT asks for a graceful shutdown.
            try? await gracefulShutdown()
            tasks.cancelAll()
        }
        logger.info("stopping: closing listeners, then open connections")
        await server.shutdown()
    }

    /// SIGHUP: read the config again and apply it; a config with an error
    /// changes nothing and is logged with its file and line.
    private func reload() {
        logger.info("SIGHUP: reloading \(common.config)")
        do {
            let startup = try Startup(options: common)
            for diagnostic in startup.loaded.diagnostics { logger.warning("\(diagnostic)") }
            try server.reload(startup.configuration)
        } catch {
            logger.error("reload refused, nothing changed: \(error)")
        }
    }
}

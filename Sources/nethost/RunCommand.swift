import ArgumentParser
import CoreMetrics
import Foundation
import Logging
import NetHost
import NetHostMetrics
import ServiceLifecycle
import UnixSignals

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run NetHost with a config file (the default)."
    )

    @OptionGroup var common: CommonOptions

    @Flag(help: "Take the listening sockets over from the NetHost running with this config (its control_socket), which then stops accepting and drains: a restart or upgrade without a refused connection.")
    var takeover = false

    @Option(help: "Event loops (threads) to run; by default one per processor this process may run on. With lua_per_loop_services, each loop has a Lua state of its own.")
    var eventLoops: Int?

    func run() async throws {
        // Trapped before anything else: a SIGHUP or SIGUSR1 sent while the config is
        // read or modules load must not meet the default action, which ends the
        // process. A reload asked for during start-up is applied once it is done.
        // SIGTERM, SIGINT and SIGQUIT are the service group's (a graceful stop); they
        // are watched here too, so that a second one ends the drain at once.
        let signals = await UnixSignalsSequence(trapping: .sighup, .sigusr1, .sigterm, .sigint, .sigquit)
        let startup: Startup
        let logging: LoggingConfiguration
        do {
            startup = try Startup(options: common)
            logging = try startup.logging(levelOverride: common.logLevel)
        } catch {
            Console.error("nethost: \(error)")
            throw ExitCode(1)
        }
        let logs = try ReopenableLogging(logging)
        LoggingSystem.bootstrap(logs.factory)
        defer { LogWriter.shared.flush(timeout: .seconds(2)) }  // lines are written by a thread of their own
        let logger = Logger(label: "nethost")
        // The process's one metrics backend, before any module makes a metric: what
        // swift-metrics counts (net_proxy, Lua modules' module:metric) and the host's
        // own counts end up on the `metrics` module's page.
        let exposition = MetricsExposition(logger: logger)
        MetricsSystem.bootstrap(exposition)
        for warning in logging.warnings { logger.warning("log: \(warning)") }
        for diagnostic in startup.loaded.diagnostics {
            logger.log(level: diagnostic.severity == .note ? .info : .warning, "\(diagnostic)")
        }
        for warning in startup.compatibilityWarnings { logger.warning("\(warning)") }

        logger.info("NetHost \(NetHostCommand.version) starting with \(startup.configPath)")
        // Before the server reads max_connections, which it keeps below this limit.
        if let raised = DescriptorLimit.raiseToHardLimit() { logger.info("\(raised)") }
        // The pidfile, the modules and the ports all come inside the service group:
        // it traps SIGTERM and SIGINT before it runs its services, so a signal that
        // arrives while modules load or as soon as a port is open still stops
        // NetHost gracefully.
        let controlSocket = startup.controlSocketPath()
        if takeover, controlSocket == nil {
            logger.error("--takeover: this config names no control socket to take over from (set control_socket, or pidfile)")
            throw ExitCode(1)
        }
        let host = HostService(
            options: startup.serverOptions(eventLoops: eventLoops),
            pidFilePath: startup.pidFilePath,
            controlSocket: controlSocket,
            takeover: takeover,
            signals: signals, logger: logger, common: common, logs: logs, exposition: exposition
        )
        let group = ServiceGroup(
            configuration: .init(
                // A NetHost that handed its sockets over ends by itself, after its drain.
                services: [.init(service: host, successTerminationBehavior: .gracefullyShutdownGroup)],
                gracefulShutdownSignals: [.sigterm, .sigint, .sigquit],
                logger: logger
            )
        )
        do {
            try await group.run()
        } catch let error as HostService.StartFailure {
            logger.error("\(error)")
            throw ExitCode(1)
        }
        logger.info("stopped")
    }
}

/// Takes the pidfile, loads the modules, then runs the server (a `Service` of its
/// own, which serves until the group asks for a graceful shutdown) beside the
/// signals that ask for a reload or statistics, and lets the pidfile go.
struct HostService: Service {
    let options: NetHostServer.Options
    let pidFilePath: String?
    /// Where this process offers its sockets to a successor (and, with `takeover`,
    /// where it asks its predecessor for them).
    let controlSocket: String?
    let takeover: Bool
    let signals: UnixSignalsSequence
    let logger: Logger
    let common: CommonOptions
    /// The log files, opened again at each SIGHUP.
    let logs: ReopenableLogging
    /// The metrics backend; the server's own counts are added to it once it exists.
    let exposition: MetricsExposition
    /// systemd's `Type=notify`, when it started NetHost.
    let notifier = SystemdNotifier()

    /// Why NetHost did not start; `run` exits 1 after logging it.
    struct StartFailure: Error, CustomStringConvertible {
        let description: String
    }

    func run() async throws {
        let pidFile = pidFilePath.map(PIDFile.init(path:))
        // A takeover takes the pidfile once the running NetHost has let it go.
        if !takeover {
            do {
                try pidFile?.acquire()
            } catch {
                throw StartFailure(description: "\(error)")
            }
        }
        defer { pidFile?.release() }
        let handOver = SocketHandOver(logger: logger)
        let activated = handOver.systemdSockets()
        let server: NetHostServer
        do {
            server = try await NetHostServer(options, logger: logger)
        } catch {
            for socket in activated { socket.close() }
            throw error
        }
        server.inherit(activated)
        // Asked once the config and the modules have loaded: a config that fails
        // stops this process before the running one is disturbed.
        var predecessor: TakeoverClient?
        if takeover, let controlSocket {
            do {
                predecessor = try await handOver.takeOver(from: controlSocket)
            } catch {
                await server.unload()
                throw StartFailure(description: "--takeover: \(error); the running NetHost (if any) goes on serving")
            }
            server.inherit(predecessor?.listeners ?? [])
            // Not while the old process still accepts on the same sockets (see `commit`).
            server.ports.holdAccepting()
        }
        // Closed at any exit before the commit, so the running NetHost goes on serving.
        defer { predecessor?.abandon() }
        let metrics = HostMetrics(server: server, exposition: exposition)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { [signals] in
                var stopSignals = 0
                for await signal in signals {
                    switch signal {
                    case .sigusr1:
                        server.logStatistics()
                    case .sighup:
                        notifier?.reloading()
                        metrics.reloaded(applied: await reload(server))
                        notifier?.ready(status: "serving (reloaded)")
                    default:
                        // The first asks for a graceful stop (the service group starts it);
                        // a second one while connections drain closes them now.
                        stopSignals += 1
                        if stopSignals >= 2 {
                            logger.notice("\(signal) again: closing the open connections now")
                            server.stopNow()
                        }
                    }
                }
            }
            do {
                try await server.run(
                    whenServing: { [predecessor, controlSocket] in
                        if let predecessor {
                            do {
                                try await handOver.commit(predecessor, pidFile: pidFile)
                                await server.ports.resumeAccepting()
                            } catch {
                                // It may still be accepting: leave the sockets to it.
                                logger.error("takeover: \(error); stopping this process, the running NetHost keeps serving")
                                server.leave()
                                return
                            }
                        }
                        if let controlSocket { handOver.offer(at: controlSocket, server: server, pidFile: pidFile) }
                        notifier?.ready(status: "serving")
                    },
                    whenStopping: {
                        handOver.close()
                        notifier?.stopping()
                        metrics.stop()
                    }
                )
            } catch let failure as NetHostServer.StartFailure {
                tasks.cancelAll()
                throw StartFailure(description: failure.description)
            }
            tasks.cancelAll()
        }
        if handOver.commitFailed.load(ordering: .acquiring) {
            throw StartFailure(description: "--takeover did not complete: the running NetHost did not let go of its sockets")
        }
    }

    /// SIGHUP: open the log files again (after a rotation, the new ones; with the
    /// reloaded config's `log`), then read the config again and apply it; a config
    /// with an error changes nothing and is logged with its file and line.
    /// Whether the new config was applied.
    private func reload(_ server: NetHostServer) async -> Bool {
        logger.info("SIGHUP: reloading \(common.config)")
        do {
            let startup = try Startup(options: common)
            do {
                let logging = try startup.logging(levelOverride: common.logLevel)
                try logs.reopen(logging)
                for warning in logging.warnings { logger.warning("log: \(warning)") }
                logger.info("log files opened again")
            } catch {
                logger.error("log files not opened again, the old ones are kept: \(error)")
            }
            for diagnostic in startup.loaded.diagnostics {
                logger.log(level: diagnostic.severity == .note ? .info : .warning, "\(diagnostic)")
            }
            try await server.reload(startup.configuration)
            // The command's own options (pidfile, control_socket) are read at start only.
            for option in OptionRegistry([ProcessOptions.group]).startOnlyChanges(from: options.options, to: startup.configuration) {
                if let warning = option.restartWarning { logger.warning("\(warning)") }
            }
            return true
        } catch {
            logger.error("reload refused, nothing changed: \(error)")
            return false
        }
    }
}

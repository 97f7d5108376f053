import Foundation
import Logging
import NetHost
import Synchronization

/// Where a `run` gets listening sockets it did not bind, and how it offers its own
/// to the next NetHost: a restart or an upgrade without a refused or reset
/// connection (README, "Restarts and upgrades").
///
/// - systemd socket activation: the sockets systemd passes (`LISTEN_FDS`).
/// - `--takeover`: the sockets of the NetHost answering on the control socket,
///   which stops accepting and drains once this one accepts on them.
/// - The control socket this one then offers in its turn.
final class SocketHandOver: Sendable {
    let logger: Logger
    /// Set once the control socket is open, so a stop can close it.
    private let control = Mutex<HandOverServer?>(nil)
    /// The old process did not let go (`commit`): this one stops, and exits 1.
    let commitFailed = Atomic<Bool>(false)

    init(logger: Logger) {
        self.logger = logger
    }

    /// The listening sockets systemd passed, if any (taken once: the variables are removed).
    func systemdSockets() -> [InheritedListener] {
        let passed: SystemdListenFDs?
        do {
            passed = try SystemdListenFDs(environment: ProcessInfo.processInfo.environment, pid: getpid())
        } catch {
            logger.warning("socket activation: \(error); binding the ports instead")
            return []
        }
        guard let passed else { return [] }
        let (listeners, refused) = passed.take()
        for reason in refused { logger.warning("socket activation: \(reason); closed") }
        logger.info("socket activation: \(listeners.count) listening socket(s) from systemd: \(listeners.map(\.logText).joined(separator: ", "))")
        return listeners
    }

    /// Asks the NetHost answering on `path` for its listening sockets.
    func takeOver(from path: String) async throws -> TakeoverClient {
        logger.info("takeover: asking the NetHost on \(path) for its listening sockets")
        let client = try await TakeoverClient.connecting(to: path)
        for reason in client.refused { logger.warning("takeover: a socket could not be used: \(reason)") }
        logger.info("takeover: received \(client.listeners.count) listening socket(s): \(client.listeners.map(\.logText).joined(separator: ", "))")
        return client
    }

    /// This process accepts on the sockets it took over: the old one may stop
    /// accepting. Then the pidfile is free to take. Throws when the old one did not
    /// let go (it may still be accepting).
    func commit(_ client: TakeoverClient, pidFile: PIDFile?) async throws {
        do {
            try await client.committing()
        } catch {
            commitFailed.store(true, ordering: .releasing)
            throw error
        }
        logger.notice("takeover: done, the old NetHost has stopped accepting and drains its connections")
        do {
            try pidFile?.acquire()
        } catch {
            logger.error("takeover: \(error); running without a pidfile")
        }
    }

    /// Opens the control socket at `path` for a successor. A failure is logged and
    /// this NetHost runs on without one (the pidfile already refuses a second start).
    func offer(at path: String, server: NetHostServer, pidFile: PIDFile?) {
        do {
            let handOver = try HandOverServer(path: path, logger: logger, hooks: .init(
                listeners: { server.ports.handOver() },
                letGo: { _ in
                    // Stop accepting before saying so: the new process starts accepting
                    // then, and a socket must not have two acceptors (NIO expects a
                    // readable listener to have a connection for it). Connections that
                    // come meanwhile wait in the queues. Blocking is fine on the
                    // control socket's thread.
                    try? server.ports.close().wait()
                    pidFile?.release()
                },
                leave: { _ in server.leave() }
            ))
            control.withLock { $0 = handOver }
            logger.info("control socket \(path): `nethost run --takeover` takes over from this process")
        } catch {
            logger.error("no control socket, so nothing can take over from this process: \(error)")
        }
    }

    /// Closes the control socket (at a stop).
    func close() {
        control.withLock { $0?.stop() }
    }
}

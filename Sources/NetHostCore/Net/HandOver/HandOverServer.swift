import Foundation
import Logging
import Synchronization

/// The running NetHost's side of a takeover: a Unix socket (`control_socket`,
/// mode 0600) where a new NetHost (`nethost run --takeover`) asks for the listening
/// sockets. It gets every one, with what it is for (`HandOverMessage`); once it
/// says it accepts on them, this process lets the socket path and the pidfile go
/// (`commit`) and stops accepting and drains, as at SIGTERM. A new process that
/// fails before that (a broken config, a crash) changes nothing here: this one
/// never stopped accepting.
///
/// Its few blocking calls run on a thread of their own, so neither an event loop
/// nor Swift's concurrency pool waits on a slow or stuck peer.
public final class HandOverServer: Sendable {
    public let path: String
    private let listening: Int32
    private let logger: Logger
    private let stopping = Atomic<Bool>(false)
    /// The socket file's inode: only our own is removed (a successor may have bound the path since).
    private let inode: UInt64?

    /// What the server needs from the process around it.
    public struct Hooks: Sendable {
        /// The listening sockets to hand over, with what each is for.
        public var listeners: @Sendable () -> [(listener: HandedListener, descriptor: Int32)]
        /// The new process (`pid`) has adopted them: stop accepting on them (it
        /// starts once told `released`) and let go of what it needs (the pidfile).
        /// The socket path is free already. Called on the control socket's thread,
        /// which may block.
        public var letGo: @Sendable (_ pid: Int32) -> Void
        /// After `released` was sent: the graceful stop (the drain) starts. Not
        /// before, or the process could end before the new one heard it.
        public var leave: @Sendable (_ pid: Int32) -> Void

        public init(
            listeners: @escaping @Sendable () -> [(listener: HandedListener, descriptor: Int32)],
            letGo: @escaping @Sendable (_ pid: Int32) -> Void,
            leave: @escaping @Sendable (_ pid: Int32) -> Void
        ) {
            self.listeners = listeners
            self.letGo = letGo
            self.leave = leave
        }
    }

    /// Binds the control socket and starts serving takeovers. A stale socket file
    /// (left by a NetHost that was killed) is replaced; one a live process answers
    /// on is an error.
    public init(path: String, logger: Logger, hooks: Hooks) throws(HandOverError) {
        self.path = path
        self.logger = logger
        let listening = try Self.bind(path)
        self.listening = listening
        self.inode = Self.inode(atPath: path)
        let thread = Thread { [self] in self.serve(hooks) }
        thread.name = "nethost-control"
        thread.start()
    }

    /// Stops serving: the socket file goes now, the thread ends within a poll interval.
    public func stop() {
        guard !stopping.exchange(true, ordering: .acquiringAndReleasing) else { return }
        removeSocketFile()
    }

    private func serve(_ hooks: Hooks) {
        defer { _ = systemClose(listening) }
        while !stopping.load(ordering: .acquiring) {
            var entry = pollfd(fd: listening, events: Int16(POLLIN), revents: 0)
            guard poll(&entry, 1, 200) == 1 else { continue }
            // accept4 is behind _GNU_SOURCE: accept, then close-on-exec (no exec happens meanwhile).
            let descriptor = accept(listening, nil, nil)
            guard descriptor >= 0 else { continue }
            _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
            let connection = ControlConnection(descriptor: descriptor)
            let committed: Bool
            do {
                committed = try converse(on: connection, hooks)
            } catch {
                logger.warning("takeover abandoned, still serving: \(error)")
                committed = false
            }
            connection.close()
            if committed { return }
        }
    }

    /// One takeover, up to the point where this process lets go. Whether it did.
    private func converse(on connection: ControlConnection, _ hooks: Hooks) throws(HandOverError) -> Bool {
        // The socket file is 0600 already; the peer's user is checked as well.
        if let peer = connection.peerUserID, peer != geteuid(), peer != 0 {
            try connection.send(.refused(reason: "user \(peer) may not take over a NetHost run by user \(geteuid())"))
            throw HandOverError("refused a takeover by user \(peer)")
        }
        let (request, stray) = try connection.receive()
        for fd in stray { _ = systemClose(fd) }
        guard case .request(let version, let pid) = request else {
            try? connection.send(.refused(reason: "expected a takeover request"))
            throw HandOverError("expected a takeover request, got \(request)")
        }
        guard version == HandOverMessage.version else {
            try? connection.send(.refused(reason: "this NetHost speaks takeover version \(HandOverMessage.version), not \(version)"))
            throw HandOverError("process \(pid) speaks takeover version \(version), this one \(HandOverMessage.version)")
        }
        let listeners = hooks.listeners()
        logger.info("takeover asked for by process \(pid): handing over \(listeners.count) listening socket(s)")
        for (listener, descriptor) in listeners {
            try connection.send(.listener(listener), descriptors: [descriptor])
        }
        try connection.send(.end(count: listeners.count))
        let (answer, more) = try connection.receive()
        for fd in more { _ = systemClose(fd) }
        guard answer == .ready else {
            throw HandOverError("process \(pid) answered \(answer) instead of ready")
        }
        // The new process accepts on every socket now. Let go of the path first, so
        // that it can bind its own control socket there once told `released`.
        stopping.store(true, ordering: .releasing)
        removeSocketFile()
        hooks.letGo(pid)
        logger.notice("process \(pid) took over the listening sockets: this one stops accepting and drains")
        try? connection.send(.released)
        connection.close()
        hooks.leave(pid)
        return true
    }

    private func removeSocketFile() {
        if let inode, Self.inode(atPath: path) == inode { unlink(path) }
    }

    private static func inode(atPath path: String) -> UInt64? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        return UInt64(info.st_ino)
    }

    private static func bind(_ path: String) throws(HandOverError) -> Int32 {
        var address = try UnixAddress(path)
        for attempt in 0 ..< 2 {
            let fd = socket(AF_UNIX, seqPacketType, 0)
            guard fd >= 0 else { throw .system("socket(AF_UNIX, SOCK_SEQPACKET)") }
            if address.withSockAddr({ Glibc.bind(fd, $0, $1) }) == 0 {
                // Before listen, so no one connects while it is still open to others.
                guard chmod(path, 0o600) == 0, listen(fd, 4) == 0 else {
                    let error = HandOverError.system("chmod/listen", "on the control socket \(path)")
                    _ = systemClose(fd)
                    unlink(path)
                    throw error
                }
                return fd
            }
            let reason = errno
            _ = systemClose(fd)
            guard reason == EADDRINUSE, attempt == 0 else {
                errno = reason
                throw .system("bind", "of the control socket \(path)")
            }
            // In use: by a live NetHost, or a file a killed one left behind.
            if let live = try? ControlConnection.connecting(to: path, timeoutSeconds: 1) {
                live.close()
                throw HandOverError("another process answers on the control socket \(path) (a NetHost running with the same config? take over from it with --takeover)")
            }
            unlink(path)
        }
        throw HandOverError("could not bind the control socket \(path)")
    }
}

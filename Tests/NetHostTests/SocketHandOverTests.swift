import Foundation
import Logging
import NetHostCore
import NetHostTestSupport
import NIOCore
import NIOPosix
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A listening socket passed to another process over a Unix socket is the same
/// socket, queue included: a connection that waited in it while the first owner
/// closed its descriptor is accepted through the second. (Closing a socket of its
/// own, as a second process beside the first with SO_REUSEPORT has, resets what
/// waits in it: the point of passing the socket.) And the control socket's
/// conversation: an abandoned takeover changes nothing, a completed one commits once.
@Suite("Socket hand-over")
struct SocketHandOverTests {
    /// A connected SOCK_SEQPACKET pair, as a control socket and its client are.
    static func pair() throws -> (ControlConnection, ControlConnection) {
        var fds: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue), 0, &fds) == 0 else {
            throw HandOverError("socketpair failed: errno \(errno)")
        }
        return (ControlConnection(descriptor: fds[0], timeoutSeconds: 5), ControlConnection(descriptor: fds[1], timeoutSeconds: 5))
    }

    /// Accepts one connection on `listener` within five seconds.
    static func acceptOne(_ listener: Int32) -> Int32? {
        var entry = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
        guard poll(&entry, 1, 5_000) == 1 else { return nil }
        let fd = accept(listener, nil, nil)
        return fd >= 0 ? fd : nil
    }

    @Test("a connection queued on a passed socket is accepted by the receiver after the sender closed its descriptor")
    func queuedConnectionSurvives() throws {
        let (sender, receiver) = try Self.pair()
        defer { sender.close(); receiver.close() }
        let listener = try ListeningSocket.bind(try SocketAddress(ipAddress: "127.0.0.1", port: 0), backlog: 16)
        let port = try #require(ListeningSocket.localAddress(of: listener)?.port)
        // Queued: the handshake is done by the kernel, no one has accepted it.
        let client = try TestClient(connectingTo: "127.0.0.1", port: port)
        try client.send("waited\n")

        let handed = HandedListener(service: "echo", interface: "127.0.0.1", port: port, boundPort: port)
        try sender.send(.listener(handed), descriptors: [listener])
        close(listener)  // the old process lets go of its descriptor

        let (message, descriptors) = try receiver.receive()
        #expect(message == .listener(handed))
        let received = try #require(descriptors.first)
        defer { close(received) }
        #expect(descriptors.count == 1)
        let inherited = try InheritedListener.describing(received, handed: handed)
        #expect(inherited.host == "127.0.0.1" && inherited.port == port)
        #expect(fcntl(received, F_GETFD) & FD_CLOEXEC != 0)

        let accepted = try #require(Self.acceptOne(received), "the queued connection was not there")
        defer { close(accepted) }
        var bytes = [UInt8](repeating: 0, count: 16)
        #expect(recv(accepted, &bytes, bytes.count, 0) == 7)
        #expect(String(decoding: bytes.prefix(7), as: UTF8.self) == "waited\n")
        _ = "served\n".withCString { send(accepted, $0, 7, 0) }
        #expect(try client.read(until: "\n") == "served\n")
    }

    @Test("a descriptor that is not a listening TCP socket is refused when described")
    func notAListener() throws {
        let (one, other) = try Self.pair()
        defer { one.close(); other.close() }
        #expect(throws: HandOverError("descriptor \(one.descriptor) is not a listening stream socket")) {
            try InheritedListener.describing(one.descriptor)
        }
    }

    // The limit guards against a hang (the `for await` below waits for the server's
    // hooks), not a speed: Swift Testing counts it from the test's start, and under
    // ThreadSanitizer on two cores a test can wait for a free thread for over a
    // minute before its first line runs (a CI run failed at 60 s so).
    @Test("the control socket: a takeover abandoned before `ready` commits nothing; the next one commits, once, and the path is freed",
          .timeLimit(.minutes(10)))
    func controlSocketConversation() async throws {
        let directory = FileManager.default.temporaryDirectory.path + "/nethost-handover-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/control.sock"
        let listener = try ListeningSocket.bind(try SocketAddress(ipAddress: "127.0.0.1", port: 0), backlog: 16)
        defer { close(listener) }
        let port = try #require(ListeningSocket.localAddress(of: listener)?.port)
        let handed = HandedListener(service: "proxy", interface: "127.0.0.1", port: port, boundPort: port)
        // What the hooks were called with, in order: letGo(pid), then leave(-pid).
        let (calls, recording) = AsyncStream<Int32>.makeStream()
        let server = try HandOverServer(path: path, logger: Logger(label: "test"), hooks: .init(
            listeners: { [(handed, listener)] },
            letGo: { pid in recording.yield(pid) },
            leave: { pid in recording.yield(-pid); recording.finish() }
        ))
        defer { server.stop() }
        var info = stat()
        #expect(stat(path, &info) == 0 && info.st_mode & 0o777 == 0o600)

        // A second control socket on the same path is refused: one answers there.
        #expect(throws: HandOverError.self) {
            _ = try HandOverServer(path: path, logger: Logger(label: "test"), hooks: .init(listeners: { [] }, letGo: { _ in }, leave: { _ in }))
        }

        // The client's calls block: on NIO's blocking pool, as NetHost runs them, not
        // on one of the few threads every async test shares.
        let abandonedGot = try await NIOThreadPool.singleton.runIfActive {
            let abandoned = try TakeoverClient(path: path, pid: 1001)
            defer { abandoned.abandon() }
            for socket in abandoned.listeners { socket.close() }
            return abandoned.listeners.map(\.handed)
        }
        #expect(abandonedGot == [handed])

        let takenPorts = try await NIOThreadPool.singleton.runIfActive {
            let taking = try TakeoverClient(path: path, pid: 1002)
            try taking.commit()
            for socket in taking.listeners { socket.close() }
            return taking.listeners.map(\.port)
        }
        #expect(takenPorts == [port])
        // `leave` comes after `released` was sent, on the server's thread; the abandoned one called nothing.
        var called: [Int32] = []
        for await pid in calls { called.append(pid) }
        #expect(called == [1002, -1002])
        #expect(access(path, F_OK) != 0, "the control socket's path is still there")
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A small blocking TCP client on POSIX sockets, for talking to the server under
/// test the way a real client would: the one the tests of every target use.
///
/// It can connect *from* a chosen source address (any of 127.0.0.0/8 works on Linux
/// loopback without set-up, e.g. 127.0.0.5; or ::1), so that a proxy in front of the
/// server reports a client address the test knows. Every call has a timeout: its
/// own if given, else the one the client was made with. Bytes read past a
/// delimiter are kept for the next read.
public final class TestClient {
    public enum ReadError: Error, Equatable, CustomStringConvertible {
        /// The timeout passed; `received` is what arrived (and is still buffered).
        case timedOut(received: [UInt8])
        /// The peer closed before the delimiter; `received` is what arrived.
        case closedBeforeDelimiter(received: [UInt8])

        public var description: String {
            switch self {
            case .timedOut(let received):
                return "timed out; received so far: \(String(decoding: received, as: UTF8.self).debugDescription)"
            case .closedBeforeDelimiter(let received):
                return "peer closed before the delimiter; received: \(String(decoding: received, as: UTF8.self).debugDescription)"
            }
        }
    }

    /// Our end of the connection (the source address and port the server sees,
    /// unless a proxy stands between).
    public let localAddress: SocketAddressStorage
    /// The address we connected to.
    public let remoteAddress: SocketAddressStorage
    /// True once a read saw the end of the stream (FIN or reset).
    public private(set) var peerClosed = false
    /// True if the end of the stream was a reset (ECONNRESET).
    public private(set) var peerReset = false
    /// How long connecting, and each call that is not given a timeout of its own, may take.
    public let timeout: Duration

    private var fd: Int32
    private var buffer: [UInt8] = []

    /// Connects to `host:port` (address literals only), binding first to `source`
    /// (port chosen by the kernel) when given.
    public init(connectingTo host: String, port: Int, from source: String? = nil, timeout: Duration = .seconds(5)) throws {
        self.timeout = timeout
        let remote = try SocketAddressStorage(host: host, port: port)
        let fd = socket(remote.family, streamSocketType, 0)
        guard fd >= 0 else { throw FixtureError("socket() failed: errno \(errno)") }
        var connected = false
        defer { if !connected { systemClose(fd) } }

        if let source {
            let local = try SocketAddressStorage(host: source, port: 0)
            guard local.family == remote.family else {
                throw FixtureError("source \(source) and destination \(host) are of different address families")
            }
            guard local.withSockAddr({ bind(fd, $0, $1) }) == 0 else {
                throw FixtureError("cannot bind the client to \(source): \(String(cString: strerror(errno)))")
            }
        }

        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        if remote.withSockAddr({ connect(fd, $0, $1) }) != 0 {
            guard errno == EINPROGRESS else {
                throw FixtureError("cannot connect to \(remote): \(String(cString: strerror(errno)))")
            }
            guard try Self.wait(fd, for: Int16(POLLOUT), timeout: timeout) else {
                throw FixtureError("connecting to \(remote) timed out after \(timeout)")
            }
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
            guard error == 0 else {
                throw FixtureError("cannot connect to \(remote): \(String(cString: strerror(error)))")
            }
        }

        var local = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        self.fd = fd
        self.localAddress = SocketAddressStorage(storage: local)
        self.remoteAddress = remote
        connected = true
    }

    deinit {
        self.close()
    }

    /// The client's own port, as a proxy reports it in its header.
    public var localPort: Int { self.localAddress.port }

    /// Sends all of `bytes`, waiting up to `timeout` for room in the socket buffer.
    public func send(_ bytes: [UInt8], timeout: Duration? = nil) throws {
        guard try self.sendUnlessClosed(bytes, timeout: timeout) else {
            throw FixtureError("send failed: the peer has closed the connection (EPIPE or ECONNRESET)")
        }
    }

    /// Sends all of `bytes`, or returns false if the peer has closed the connection
    /// meanwhile (EPIPE, ECONNRESET): a server that refuses a client may close
    /// before the client has finished sending.
    public func sendUnlessClosed(_ bytes: [UInt8], timeout: Duration? = nil) throws -> Bool {
        let timeout = timeout ?? self.timeout
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { raw in
                systemSend(self.fd, raw.baseAddress, raw.count)
            }
            if sent > 0 {
                offset += sent
            } else if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR {
                guard try Self.wait(self.fd, for: Int16(POLLOUT), timeout: timeout) else {
                    throw FixtureError("send timed out after \(timeout) with \(bytes.count - offset) bytes left")
                }
            } else if errno == EPIPE || errno == ECONNRESET {
                return false
            } else {
                throw FixtureError("send failed: \(String(cString: strerror(errno)))")
            }
        }
        return true
    }

    public func send(_ text: String, timeout: Duration? = nil) throws {
        try self.send(Array(text.utf8), timeout: timeout)
    }

    /// Reads until `delimiter` and returns the bytes up to and including it.
    public func read(until delimiter: [UInt8], timeout: Duration? = nil) throws -> [UInt8] {
        precondition(!delimiter.isEmpty, "an empty delimiter")
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout ?? self.timeout)
        var searchFrom = 0
        while true {
            if let end = self.buffer.firstRange(of: delimiter, from: searchFrom) {
                let line = Array(self.buffer[..<end])
                self.buffer.removeFirst(end)
                return line
            }
            searchFrom = max(0, self.buffer.count - delimiter.count + 1)
            if self.peerClosed { throw ReadError.closedBeforeDelimiter(received: self.buffer) }
            guard try self.fill(until: deadline) else { throw ReadError.timedOut(received: self.buffer) }
        }
    }

    /// Reads until `delimiter` and returns the text up to and including it.
    public func read(until delimiter: String, timeout: Duration? = nil) throws -> String {
        String(decoding: try self.read(until: Array(delimiter.utf8), timeout: timeout), as: UTF8.self)
    }

    /// Reads a line and returns it without its "\n" (a "\r" before it stays).
    public func readLine(timeout: Duration? = nil) throws -> String {
        String(decoding: try self.read(until: [UInt8(ascii: "\n")], timeout: timeout).dropLast(), as: UTF8.self)
    }

    /// Reads exactly `count` bytes.
    /// Throws ``ReadError`` if the peer closes or `timeout` passes first.
    public func read(count: Int, timeout: Duration? = nil) throws -> [UInt8] {
        let deadline = ContinuousClock().now.advanced(by: timeout ?? self.timeout)
        while self.buffer.count < count {
            if self.peerClosed { throw ReadError.closedBeforeDelimiter(received: self.buffer) }
            guard try self.fill(until: deadline) else { throw ReadError.timedOut(received: self.buffer) }
        }
        defer { self.buffer.removeFirst(count) }
        return Array(self.buffer.prefix(count))
    }

    /// Reads until the peer closes and returns everything not read before.
    /// Throws ``ReadError/timedOut(received:)`` if the peer keeps the connection open.
    public func readToEnd(timeout: Duration? = nil) throws -> [UInt8] {
        let deadline = ContinuousClock().now.advanced(by: timeout ?? self.timeout)
        while !self.peerClosed {
            guard try self.fill(until: deadline) else { throw ReadError.timedOut(received: self.buffer) }
        }
        defer { self.buffer.removeAll() }
        return self.buffer
    }

    /// Whether the peer closes the connection within `timeout` (data that arrives
    /// meanwhile is kept for later reads).
    public func waitForPeerClose(timeout: Duration? = nil) throws -> Bool {
        let deadline = ContinuousClock().now.advanced(by: timeout ?? self.timeout)
        while !self.peerClosed {
            guard try self.fill(until: deadline) else { return false }
        }
        return true
    }

    /// Closes our sending side (FIN), keeping the socket open for reading.
    public func shutdownWrite() {
        _ = shutdown(self.fd, Int32(SHUT_WR))
    }

    /// Aborts the connection: closes the socket with SO_LINGER 0, so the peer
    /// gets a reset (RST) instead of an orderly FIN. Safe to call twice.
    public func reset() {
        guard self.fd >= 0 else { return }
        var abortive = linger(l_onoff: 1, l_linger: 0)
        _ = setsockopt(self.fd, SOL_SOCKET, SO_LINGER, &abortive, socklen_t(MemoryLayout<linger>.size))
        self.close()
    }

    /// Closes the socket. Safe to call twice.
    public func close() {
        if self.fd >= 0 {
            systemClose(self.fd)
            self.fd = -1
        }
    }

    /// Waits for bytes until `deadline`; appends them to the buffer. False on timeout.
    private func fill(until deadline: ContinuousClock.Instant) throws -> Bool {
        let remaining = deadline - ContinuousClock().now
        guard remaining > .zero, try Self.wait(self.fd, for: Int16(POLLIN), timeout: remaining) else { return false }
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        let count = chunk.withUnsafeMutableBytes { recv(self.fd, $0.baseAddress, $0.count, 0) }
        if count > 0 {
            self.buffer += chunk[..<count]
        } else if count == 0 {
            self.peerClosed = true
        } else if errno == ECONNRESET {
            self.peerClosed = true
            self.peerReset = true
        } else if errno != EAGAIN && errno != EINTR {
            throw FixtureError("recv failed: \(String(cString: strerror(errno)))")
        }
        return true
    }

    /// `poll(2)` one descriptor; false on timeout.
    private static func wait(_ fd: Int32, for events: Int16, timeout: Duration) throws -> Bool {
        var descriptor = pollfd(fd: fd, events: events, revents: 0)
        while true {
            let result = poll(&descriptor, 1, Self.milliseconds(timeout))
            if result > 0 { return true }
            if result == 0 { return false }
            if errno != EINTR { throw FixtureError("poll failed: \(String(cString: strerror(errno)))") }
        }
    }

    /// `poll(2)`'s timeout: whole milliseconds, rounded up, so a wait is never cut short.
    private static func milliseconds(_ duration: Duration) -> Int32 {
        let (seconds, attoseconds) = duration.components
        return Int32(clamping: seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000)
    }
}

// `send` and `close` are also methods of `TestClient`; these reach the system's.
private func systemSend(_ fd: Int32, _ bytes: UnsafeRawPointer?, _ count: Int) -> Int {
    #if canImport(Glibc)
    return send(fd, bytes, count, Int32(MSG_NOSIGNAL))
    #else
    return send(fd, bytes, count, 0)
    #endif
}

private func systemClose(_ fd: Int32) {
    _ = close(fd)
}

extension Array where Element == UInt8 {
    /// The end index of the first occurrence of `pattern` starting at or after `start`.
    fileprivate func firstRange(of pattern: [UInt8], from start: Int) -> Int? {
        guard pattern.count <= self.count else { return nil }
        var index = start
        while index + pattern.count <= self.count {
            if self[index..<index + pattern.count].elementsEqual(pattern) { return index + pattern.count }
            index += 1
        }
        return nil
    }
}

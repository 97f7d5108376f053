import NIOCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A listening socket this process did not bind: handed over by the NetHost it
/// takes over from, or passed by systemd (socket activation). NetHost adopts it for
/// the planned port at its address (`ListenerInheritance`), so connections queued
/// on it are accepted here rather than reset.
public struct InheritedListener: Sendable, Hashable {
    /// Owned by this process until it is adopted or closed.
    public let descriptor: Int32
    /// The address it is bound to, as the kernel says (`getsockname`).
    public let host: String
    public let port: Int
    /// What the process that handed it over used it for; nil for systemd's.
    public let handed: HandedListener?
    /// systemd's name for it (`FileDescriptorName=`, LISTEN_FDNAMES), if any.
    public let name: String?

    public init(descriptor: Int32, host: String, port: Int, handed: HandedListener? = nil, name: String? = nil) {
        self.descriptor = descriptor
        self.host = host
        self.port = port
        self.handed = handed
        self.name = name
    }

    /// Describes the socket behind `descriptor`; throws when it is not a listening
    /// TCP socket on an IP address (systemd may pass other kinds).
    public static func describing(
        _ descriptor: Int32, handed: HandedListener? = nil, name: String? = nil
    ) throws(HandOverError) -> InheritedListener {
        var type: Int32 = 0
        var listening: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(descriptor, SOL_SOCKET, SO_TYPE, &type, &length) == 0 else {
            throw .system("getsockopt(SO_TYPE)", "of descriptor \(descriptor)")
        }
        length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(descriptor, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) == 0 else {
            throw .system("getsockopt(SO_ACCEPTCONN)", "of descriptor \(descriptor)")
        }
        guard type == streamType, listening != 0 else {
            throw HandOverError("descriptor \(descriptor) is not a listening stream socket")
        }
        guard let address = ListeningSocket.localAddress(of: descriptor), let port = address.port,
              let host = address.ipAddress else {
            throw HandOverError("descriptor \(descriptor) is not bound to an IP address and port")
        }
        return InheritedListener(descriptor: descriptor, host: host, port: port, handed: handed, name: name)
    }

    /// Closes this process's descriptor (not adopted: the port is not wanted here).
    public func close() {
        _ = systemClose(descriptor)
    }

    /// For logs: where it listens, and where it came from.
    public var logText: String {
        let address = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        if let handed { return "\(address) (service '\(handed.service)' before)" }
        if let name { return "\(address) (\(name))" }
        return address
    }
}

#if canImport(Glibc)
let streamType = Int32(SOCK_STREAM.rawValue)
#else
let streamType = SOCK_STREAM
#endif

/// The system calls around a listening socket that NIO does not offer: binding one
/// whose descriptor NetHost keeps (so it can be handed to the next process), and
/// reading what an inherited one is bound to.
public enum ListeningSocket {
    /// Binds and listens on `address` with SO_REUSEADDR and SO_REUSEPORT (and
    /// IPV6_V6ONLY for IPv6: "::" means IPv6 only, as in Prosody). Errors are NIO's
    /// `IOError`s, so they read as a bind by NIO would.
    public static func bind(_ address: SocketAddress, backlog: Int32) throws -> Int32 {
        let family: Int32
        switch address {
        case .v4: family = AF_INET
        case .v6: family = AF_INET6
        default: throw IOError(errnoCode: EAFNOSUPPORT, reason: "bind")
        }
        let fd = socket(family, streamType | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw IOError(errnoCode: errno, reason: "socket") }
        do {
            try set(fd, SOL_SOCKET, SO_REUSEADDR)
            try set(fd, SOL_SOCKET, SO_REUSEPORT)
            if family == AF_INET6 { try set(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY) }
            let bound = address.withSockAddr { Glibc.bind(fd, $0, socklen_t($1)) }
            guard bound == 0 else { throw IOError(errnoCode: errno, reason: "bind") }
            guard listen(fd, backlog) == 0 else { throw IOError(errnoCode: errno, reason: "listen") }
        } catch {
            close(fd)
            throw error
        }
        return fd
    }

    private static func set(_ fd: Int32, _ level: Int32, _ name: Int32) throws {
        var on: Int32 = 1
        guard setsockopt(fd, level, name, &on, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
            throw IOError(errnoCode: errno, reason: "setsockopt")
        }
    }

    /// What the socket is bound to.
    public static func localAddress(of descriptor: Int32) -> SocketAddress? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = withUnsafeMutablePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        guard result == 0 else { return nil }
        switch Int32(storage.ss_family) {
        case AF_INET:
            return withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { SocketAddress($0.pointee) } }
        case AF_INET6:
            return withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { SocketAddress($0.pointee) } }
        default:
            return nil
        }
    }

    /// The identity of the socket behind a descriptor (its inode), so that two
    /// descriptors of one socket are handed over once.
    static func identity(of descriptor: Int32) -> UInt64? {
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { return nil }
        return UInt64(info.st_ino)
    }
}

import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One end of a takeover conversation: a Unix SOCK_SEQPACKET socket, so each
/// message arrives whole and alone, and a listening socket can travel with one
/// (SCM_RIGHTS: the receiver gets its own descriptor of the same socket, queue
/// included). Blocking, with a time limit per call: it runs on a thread of its own
/// (the old process's control thread) or of NIO's blocking pool (the new process).
public final class ControlConnection: Sendable {
    public let descriptor: Int32
    private let closed = Atomic<Bool>(false)

    /// Takes ownership of a connected SOCK_SEQPACKET socket.
    public init(descriptor: Int32, timeoutSeconds: Int = 30) {
        self.descriptor = descriptor
        var limit = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Connects to the control socket at `path`.
    public static func connecting(to path: String, timeoutSeconds: Int = 30) throws(HandOverError) -> ControlConnection {
        let fd = socket(AF_UNIX, seqPacketType, 0)
        guard fd >= 0 else { throw .system("socket(AF_UNIX, SOCK_SEQPACKET)") }
        var address = try UnixAddress(path)
        let connected = address.withSockAddr { connect(fd, $0, $1) }
        guard connected == 0 else {
            let error = HandOverError.system("connect", "to \(path)")
            _ = systemClose(fd)
            throw error
        }
        return ControlConnection(descriptor: fd, timeoutSeconds: timeoutSeconds)
    }

    /// Closes the connection (the peer reads end of file); once, however often called.
    public func close() {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        _ = systemClose(descriptor)
    }

    /// Sends a message, with `descriptors` attached (the sender keeps its own).
    public func send(_ message: HandOverMessage, descriptors: [Int32] = []) throws(HandOverError) {
        var bytes = message.encoded()
        let sent: Int = bytes.withUnsafeMutableBytes { payload in
            var vector = iovec(iov_base: payload.baseAddress, iov_len: payload.count)
            return withUnsafeMutablePointer(to: &vector) { vectorPointer in
                var header = msghdr()
                header.msg_iov = vectorPointer
                header.msg_iovlen = 1
                guard !descriptors.isEmpty else { return sendmsg(descriptor, &header, Int32(MSG_NOSIGNAL)) }
                let control = ControlBuffer(descriptors: descriptors)
                defer { control.deallocate() }
                header.msg_control = control.pointer
                header.msg_controllen = control.size
                return sendmsg(descriptor, &header, Int32(MSG_NOSIGNAL))
            }
        }
        guard sent == bytes.count else { throw .system("sendmsg", "on the control socket") }
    }

    /// The next message and the descriptors that came with it (close-on-exec). End
    /// of file, a time-out or a message that is not one are errors.
    public func receive() throws(HandOverError) -> (message: HandOverMessage, descriptors: [Int32]) {
        var bytes = [UInt8](repeating: 0, count: HandOverMessage.maximumSize + 1)
        let control = ControlBuffer(capacity: Self.maximumDescriptors)
        defer { control.deallocate() }
        var flags: Int32 = 0
        let count: Int = bytes.withUnsafeMutableBytes { payload in
            var vector = iovec(iov_base: payload.baseAddress, iov_len: payload.count)
            return withUnsafeMutablePointer(to: &vector) { vectorPointer in
                var header = msghdr()
                header.msg_iov = vectorPointer
                header.msg_iovlen = 1
                header.msg_control = control.pointer
                header.msg_controllen = control.size
                let received = recvmsg(descriptor, &header, Int32(MSG_CMSG_CLOEXEC))
                flags = header.msg_flags
                if received >= 0 { control.size = header.msg_controllen }
                return received
            }
        }
        if count < 0 {
            if errno == EAGAIN || errno == EWOULDBLOCK { throw HandOverError("the other process did not answer in time") }
            throw .system("recvmsg", "on the control socket")
        }
        let descriptors = control.descriptors()
        guard count > 0 else {
            for fd in descriptors { _ = systemClose(fd) }
            throw HandOverError("the other process closed the control connection")
        }
        guard flags & Int32(MSG_CTRUNC) == 0, flags & Int32(MSG_TRUNC) == 0 else {
            for fd in descriptors { _ = systemClose(fd) }
            throw .malformed("a message or its descriptors did not fit")
        }
        do {
            return (try HandOverMessage(decoding: Array(bytes[..<count])), descriptors)
        } catch {
            for fd in descriptors { _ = systemClose(fd) }
            throw error
        }
    }

    /// The user id of the process at the other end (SO_PEERCRED), nil where unknown.
    public var peerUserID: uid_t? {
        #if os(Linux)
        // `struct ucred` is behind _GNU_SOURCE, which Swift's Glibc module does not see: its layout.
        struct Credentials { var pid: pid_t = 0; var uid: uid_t = 0; var gid: gid_t = 0 }
        var credentials = Credentials()
        var length = socklen_t(MemoryLayout<Credentials>.size)
        guard getsockopt(descriptor, SOL_SOCKET, SO_PEERCRED, &credentials, &length) == 0 else { return nil }
        return credentials.uid
        #else
        return nil
        #endif
    }

    /// Messages carry one descriptor each; room for a few more is only a margin.
    static let maximumDescriptors = 8
}

#if canImport(Glibc)
let seqPacketType = Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
#else
let seqPacketType = SOCK_SEQPACKET
#endif

/// The control-message buffer of sendmsg/recvmsg holding SCM_RIGHTS descriptors.
/// CMSG_SPACE, CMSG_LEN and CMSG_DATA are C macros that do not import into Swift,
/// so their arithmetic is written out: a `cmsghdr`, padded to the alignment of a
/// `size_t`, then the descriptors.
private final class ControlBuffer {
    let pointer: UnsafeMutableRawPointer
    let capacity: Int
    var size: Int

    private static let alignment = MemoryLayout<Int>.size
    private static func aligned(_ length: Int) -> Int { (length + alignment - 1) & ~(alignment - 1) }
    private static let headerSize = aligned(MemoryLayout<cmsghdr>.size)

    /// Room to receive up to `capacity` descriptors.
    init(capacity: Int) {
        self.capacity = Self.headerSize + Self.aligned(capacity * MemoryLayout<Int32>.size)
        self.pointer = UnsafeMutableRawPointer.allocate(byteCount: self.capacity, alignment: MemoryLayout<cmsghdr>.alignment)
        self.pointer.initializeMemory(as: UInt8.self, repeating: 0, count: self.capacity)
        self.size = self.capacity
    }

    /// Filled with one SCM_RIGHTS message carrying `descriptors`.
    convenience init(descriptors: [Int32]) {
        self.init(capacity: descriptors.count)
        var header = cmsghdr()
        header.cmsg_level = SOL_SOCKET
        header.cmsg_type = Int32(SCM_RIGHTS)
        header.cmsg_len = .init(Self.headerSize + descriptors.count * MemoryLayout<Int32>.size)
        pointer.storeBytes(of: header, as: cmsghdr.self)
        for (index, fd) in descriptors.enumerated() {
            pointer.storeBytes(of: fd, toByteOffset: Self.headerSize + index * MemoryLayout<Int32>.size, as: Int32.self)
        }
    }

    /// The descriptors of every SCM_RIGHTS message in the first `size` bytes.
    func descriptors() -> [Int32] {
        var result: [Int32] = []
        var offset = 0
        while offset + Self.headerSize <= size {
            let header = pointer.load(fromByteOffset: offset, as: cmsghdr.self)
            let length = Int(header.cmsg_len)
            guard length >= Self.headerSize, offset + length <= size else { break }
            if header.cmsg_level == SOL_SOCKET, header.cmsg_type == Int32(SCM_RIGHTS) {
                let count = (length - Self.headerSize) / MemoryLayout<Int32>.size
                for index in 0 ..< count {
                    result.append(pointer.load(fromByteOffset: offset + Self.headerSize + index * MemoryLayout<Int32>.size, as: Int32.self))
                }
            }
            offset += Self.aligned(length)
        }
        return result
    }

    func deallocate() { pointer.deallocate() }
}

/// A `sockaddr_un` for a path; paths longer than the kernel takes are refused.
struct UnixAddress {
    private var address = sockaddr_un()
    private let length: socklen_t

    init(_ path: String) throws(HandOverError) {
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard !bytes.isEmpty, bytes.count < capacity else {
            throw HandOverError("the control socket path \(path) is longer than the \(capacity - 1) bytes a Unix socket path may have")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + 1)
    }

    mutating func withSockAddr<T>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
        let length = self.length
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
        }
    }
}

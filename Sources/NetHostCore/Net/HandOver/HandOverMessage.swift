import Foundation

/// What a listening socket handed from one NetHost process to the next is for.
/// The socket itself travels beside this, as a descriptor (SCM_RIGHTS).
public struct HandedListener: Codable, Hashable, Sendable {
    /// The service it listened for in the process that hands it over. Only a port
    /// configured as 0 is matched by it (see `ListenerInheritance`); any other is
    /// matched by its address, whichever service the new config puts there.
    public var service: String
    /// As configured: `*`, `::` or an address.
    public var interface: String
    /// As configured (0: any free port).
    public var port: Int
    /// The port it is bound to (differs from `port` only for a configured 0).
    public var boundPort: Int

    public init(service: String, interface: String, port: Int, boundPort: Int) {
        self.service = service
        self.interface = interface
        self.port = port
        self.boundPort = boundPort
    }
}

/// The messages of a takeover, one per SOCK_SEQPACKET packet on the control socket:
///
///     new process                              old process
///     request(version, pid)        ->
///                                  <-          listener(...) + its descriptor, once per socket
///                                  <-          end(count)        (or refused(reason))
///     (adopts the sockets, accepts on them)
///     ready                        ->
///                                  <-          released          (pidfile and control socket are free;
///                                               it stops accepting and drains)
///
/// As HAProxy's `-x` / `expose-fd listeners`: the sockets themselves pass, so a
/// connection queued on one of them is accepted by whichever process accepts next,
/// and none is reset. Each message is a small JSON object, so a newer NetHost can
/// add fields that an older one ignores.
public enum HandOverMessage: Equatable, Sendable {
    case request(version: Int, pid: Int32)
    case listener(HandedListener)
    case end(count: Int)
    case refused(reason: String)
    case ready
    case released

    /// The version of this exchange that this NetHost speaks.
    public static let version = 1
    /// Larger packets are refused: a message is one listener's description.
    public static let maximumSize = 16 * 1024

    private struct Wire: Codable {
        var type: String
        var version: Int?
        var pid: Int32?
        var listener: HandedListener?
        var count: Int?
        var reason: String?
    }

    public func encoded() -> [UInt8] {
        var wire = Wire(type: "")
        switch self {
        case .request(let version, let pid):
            wire.type = "request"
            wire.version = version
            wire.pid = pid
        case .listener(let listener):
            wire.type = "listener"
            wire.listener = listener
        case .end(let count):
            wire.type = "end"
            wire.count = count
        case .refused(let reason):
            wire.type = "refused"
            wire.reason = reason
        case .ready:
            wire.type = "ready"
        case .released:
            wire.type = "released"
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        // Encoding a struct of strings and integers cannot fail.
        return (try? Array(encoder.encode(wire))) ?? []
    }

    public init(decoding bytes: [UInt8]) throws(HandOverError) {
        guard bytes.count <= Self.maximumSize else { throw .malformed("a message of \(bytes.count) bytes") }
        let wire: Wire
        do {
            wire = try JSONDecoder().decode(Wire.self, from: Data(bytes))
        } catch {
            throw .malformed("not a takeover message: \(String(decoding: bytes.prefix(80), as: UTF8.self))")
        }
        func field<T>(_ value: T?, _ name: String) throws(HandOverError) -> T {
            guard let value else { throw .malformed("a '\(wire.type)' message without '\(name)'") }
            return value
        }
        switch wire.type {
        case "request": self = .request(version: try field(wire.version, "version"), pid: try field(wire.pid, "pid"))
        case "listener": self = .listener(try field(wire.listener, "listener"))
        case "end": self = .end(count: try field(wire.count, "count"))
        case "refused": self = .refused(reason: try field(wire.reason, "reason"))
        case "ready": self = .ready
        case "released": self = .released
        default: throw .malformed("unknown message type '\(wire.type)'")
        }
    }
}

/// Why a takeover did not happen, or a socket could not be passed or adopted.
public struct HandOverError: Error, CustomStringConvertible, Sendable, Equatable {
    public let description: String

    public init(_ description: String) { self.description = description }

    static func malformed(_ what: String) -> HandOverError { HandOverError("malformed takeover message: \(what)") }

    /// A system call failed; `errno` read now.
    static func system(_ call: String, _ context: String = "") -> HandOverError {
        let reason = String(cString: strerror(errno))
        return HandOverError("\(call)\(context.isEmpty ? "" : " " + context) failed: \(reason)")
    }
}

import Foundation
import SocketTestSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// HAProxy's runtime API on its stats socket (`stats socket <path> level admin` in
/// the `global` section): what HAProxy itself believes about its servers, the only
/// independent witness of what an agent check made it do.
struct HAProxyStats: Sendable {
    /// One line of `show stat`: a proxy's or a server's counters, by column name
    /// (`status`, `weight`, `stot`, `scur`, `agent_status`, ...).
    struct Row: Sendable, CustomStringConvertible {
        let fields: [String: String]

        subscript(_ column: String) -> String? { fields[column] }
        /// `status`: `UP`, `DOWN`, `DRAIN`, `MAINT`, `no check`, with suffixes such as ` (agent)`.
        var status: String { fields["status"] ?? "?" }
        /// The effective weight (what the agent's percentage made of the configured one).
        var weight: Int? { fields["weight"].flatMap { Int($0) } }
        /// Sessions sent to this server since HAProxy started.
        var totalSessions: Int { fields["stot"].flatMap { Int($0) } ?? 0 }
        var description: String {
            ["status", "weight", "scur", "stot", "check_status", "agent_status", "last_agt"]
                .map { "\($0)=\(fields[$0] ?? "")" }.joined(separator: " ")
        }
    }

    let socketPath: String

    /// Sends one command and returns the whole answer (HAProxy closes after it).
    func command(_ text: String, timeout: Duration = .seconds(5)) throws -> String {
        let fd = socket(AF_UNIX, streamSocketType, 0)
        guard fd >= 0 else { throw FixtureError("socket(AF_UNIX) failed: errno \(errno)") }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let path = Array(socketPath.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard path.count < capacity else { throw FixtureError("socket path too long: \(socketPath)") }
        withUnsafeMutableBytes(of: &address.sun_path) { bytes in
            bytes.copyBytes(from: path)
            bytes[path.count] = 0
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else { throw FixtureError("cannot connect to HAProxy's stats socket \(socketPath): errno \(errno)") }
        var timeval = timeval(tv_sec: Int(timeout.components.seconds), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeval, socklen_t(MemoryLayout<timeval>.size))
        let request = Array((text + "\n").utf8)
        guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, 0) }) == request.count else {
            throw FixtureError("cannot send to HAProxy's stats socket: errno \(errno)")
        }
        var answer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                answer += chunk[..<count]
            } else if count == 0 {
                return String(decoding: answer, as: UTF8.self)
            } else if errno != EINTR {
                throw FixtureError("reading HAProxy's stats socket failed: errno \(errno)")
            }
        }
    }

    /// `show stat`, one row per proxy and server, keyed `backend/server`.
    func servers() throws -> [String: Row] {
        let lines = try command("show stat").split(separator: "\n")
        guard let header = lines.first, header.hasPrefix("# ") else {
            throw FixtureError("unexpected answer to show stat: \(lines.prefix(3))")
        }
        let columns = header.dropFirst(2).split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        var rows: [String: Row] = [:]
        for line in lines.dropFirst() {
            let values = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            let fields = Dictionary(zip(columns, values), uniquingKeysWith: { first, _ in first })
            rows["\(fields["pxname"] ?? "?")/\(fields["svname"] ?? "?")"] = Row(fields: fields)
        }
        return rows
    }

    /// The row of `backend/server`.
    func server(_ name: String) throws -> Row {
        guard let row = try servers()[name] else { throw FixtureError("HAProxy has no server \(name)") }
        return row
    }

    /// Polls `show stat` until `condition` holds for `backend/server`'s row, and
    /// returns that row; throws after `timeout` with the last row seen.
    @discardableResult
    func waitFor(
        _ name: String, timeout: Duration = .seconds(10), _ what: String, _ condition: (Row) -> Bool
    ) async throws -> Row {
        var last: Row?
        let row = try await poll(timeout: timeout) { () -> Row? in
            let row = try self.server(name)
            last = row
            return condition(row) ? row : nil
        }
        guard let row else {
            throw FixtureError("HAProxy's \(name) never got \(what) in \(timeout); last seen: \(last.map(String.init(describing:)) ?? "nothing")")
        }
        return row
    }
}

import Foundation
import SocketTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Interop tests: real PROXY senders (HAProxy, nginx) in front of the real `nethost`
// binary, on loopback. NetHost runs `net_proxy` and a Lua service,
// `interop_report`, that tells each connection what it was told about it, then
// echoes. The tests compare what the service saw with what the sender and the
// client know (the client's own source address and port, the sender's log), as
// exact strings: a wrong address anywhere fails them.
//
// A missing haproxy, nginx or openssl fails these tests with the install command
// (the fixtures throw); nothing is skipped.

/// The parent of every interop suite. They run one at a time: each starts
/// several processes, health checks run on 200 ms timers, and the machine may
/// have two cores.
@Suite("Interop: real PROXY senders in front of nethost", .serialized)
struct InteropTests {}

// MARK: - The Lua service

/// `mod_interop_report.lua`: on connect it writes one line, `key=value` pairs
/// separated by spaces, and logs the same line (`interop-report ...`) so that
/// connections no test client reads (health checks) can be checked too; then it
/// echoes every byte it gets.
///
/// Values are written with `tostring` (so a missing one is `nil`), and every byte
/// outside `[A-Za-z0-9.-_:/,]` as `%XX`; ``parse(_:)`` undoes that.
enum InteropReport {
    static let serviceName = "interop_report"
    static let moduleFile = "mod_interop_report.lua"

    static let source = #"""
local listener = {}

local function encode(value)
	return (tostring(value):gsub("[^%w%.%-_:/,]", function (c) return ("%%%02X"):format(c:byte()) end))
end

local function endpoint(e)
	if e == nil then return "none" end
	return tostring(e.ip or e.path) .. "," .. tostring(e.port)
end

local function describe(conn)
	local fields = {}
	local function add(key, value) fields[#fields + 1] = key .. "=" .. encode(value) end
	add("ip", conn:ip())
	add("port", conn:port())
	add("proxyip", conn:proxyip())
	add("proxyport", conn:proxyport())
	add("serverport", conn:serverport())
	local h = conn:proxyheader()
	if h == nil then
		add("header", "none")
		return table.concat(fields, " ")
	end
	add("version", h.version)
	add("command", h.command)
	add("family", h.family)
	add("source", endpoint(h.source))
	add("destination", endpoint(h.destination))
	add("authority", h.authority)
	add("alpn", h.alpn)
	add("unique_id", h.unique_id)
	add("crc32c", h.crc32c ~= nil and "present" or "absent")
	if h.ssl then
		add("ssl.ssl", h.ssl.ssl)
		add("ssl.cert_conn", h.ssl.cert_conn)
		add("ssl.verified", h.ssl.verified)
		add("ssl.version", h.ssl.version)
		add("ssl.cn", h.ssl.cn)
		add("ssl.cipher", h.ssl.cipher)
		add("ssl.sig_alg", h.ssl.sig_alg)
		add("ssl.key_alg", h.ssl.key_alg)
	else
		add("ssl", "absent")
	end
	local types = {}
	for i, tlv in ipairs(h.tlvs) do types[i] = tostring(tlv.type) end
	add("tlvs", #types)
	add("tlv_types", #types > 0 and table.concat(types, ",") or "none")
	return table.concat(fields, " ")
end

function listener.onconnect(conn)
	local line = describe(conn)
	module:log("info", "interop-report %s", line)
	conn:write(line .. "\n")
end

function listener.onincoming(conn, data)
	conn:write(data)
end

module:provides("net", { name = "interop_report", listener = listener })
"""#

    /// The fields of a report line (the service's, or the `interop-report` log line
    /// from its first field on); `%XX` decoded. Fields that are not `key=value`
    /// (such as the log's `module=` metadata, which is) are kept as they are.
    static func parse(_ line: some StringProtocol) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in String(line).split(separator: " ") {
            guard let equals = pair.firstIndex(of: "=") else { continue }
            fields[String(pair[..<equals])] = decode(pair[pair.index(after: equals)...])
        }
        return fields
    }

    private static func decode(_ text: Substring) -> String {
        var bytes: [UInt8] = []
        var utf8 = Array(text.utf8)[...]
        while let byte = utf8.popFirst() {
            if byte == UInt8(ascii: "%"), utf8.count >= 2,
               let value = UInt8(String(decoding: utf8.prefix(2), as: UTF8.self), radix: 16) {
                bytes.append(value)
                utf8 = utf8.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Reads the report line the service writes first.
    static func read(from client: TestClient, timeout: Duration = .seconds(5)) throws -> [String: String] {
        let line = try client.read(until: "\n", timeout: timeout)
        return parse(line.dropLast())
    }

    /// The reports nethost logged so far (every connection the service saw), in order.
    static func logged(in log: String) -> [[String: String]] {
        log.split(separator: "\n").compactMap { line in
            guard let start = line.range(of: "interop-report ") else { return nil }
            var fields = parse(line[start.upperBound...])
            fields["module"] = nil  // the log line's metadata
            return fields
        }
    }

    /// What the service reports for a header naming a client: every field, TLV fields
    /// absent. Tests change the TLV fields they expect, then compare whole dictionaries.
    static func proxied(
        version: Int,
        family: String = "inet",
        client: String,
        clientPort: Int,
        destination: String,
        destinationPort: Int,
        proxy: String,
        proxyPort: Int,
        serverPort: Int
    ) -> [String: String] {
        [
            "ip": client, "port": "\(clientPort)",
            "proxyip": proxy, "proxyport": "\(proxyPort)", "serverport": "\(serverPort)",
            "version": "\(version)", "command": "proxy", "family": family,
            "source": "\(client),\(clientPort)", "destination": "\(destination),\(destinationPort)",
            "authority": "nil", "alpn": "nil", "unique_id": "nil", "crc32c": "absent",
            "ssl": "absent", "tlvs": "0", "tlv_types": "none",
        ]
    }

    /// `fields` with the SSL TLV's fields instead of `ssl=absent` (unset ones `nil`).
    static func withSSL(_ fields: [String: String], _ ssl: [String: String]) -> [String: String] {
        var result = fields
        result["ssl"] = nil
        for key in ["ssl", "cert_conn", "verified", "version", "cn", "cipher", "sig_alg", "key_alg"] {
            result["ssl.\(key)"] = ssl[key] ?? "nil"
        }
        return result
    }
}

// MARK: - nethost

enum InteropNetHost {
    /// Starts nethost (`--log-level debug`) with `net_proxy` mapping each of `ports`
    /// to the report service, listening on 127.0.0.1 and ::1, and waits until every
    /// port listens on both. `trustedProxies` nil keeps the default (127.0.0.1, ::1).
    static func start(ports: [Int], trustedProxies: [String]? = nil) async throws -> NetHostFixture {
        let mappings = ports.map { "[\($0)] = \"\(InteropReport.serviceName)\"" }.joined(separator: ", ")
        var lines = [
            "modules_enabled = { \"net_proxy\", \"\(InteropReport.serviceName)\" }",
            "interfaces = { \"127.0.0.1\", \"::1\" }",
            "proxy_port_mappings = { \(mappings) }",
        ]
        if let trustedProxies {
            lines.append("proxy_trusted_proxies = { \(trustedProxies.map { "\"\($0)\"" }.joined(separator: ", ")) }")
        }
        let config = lines
        return try await NetHostFixture.start(
            config: { paths in (["plugin_paths = { \"\(paths.modulesDirectory)\" }"] + config).joined(separator: "\n") + "\n" },
            modules: [InteropReport.moduleFile: InteropReport.source],
            arguments: { ["run", "--config", $0.configFile, "--log-level", "debug"] },
            readiness: ports.flatMap { [.listening(host: "127.0.0.1", port: $0), .listening(host: "::1", port: $0)] }
        )
    }
}

// MARK: - Sender logs

/// The frontend's `log-format`: one line per session with the client's address as
/// HAProxy saw it and the source address of its own connection to nethost, so that
/// a test knows the port nethost should report as `conn:proxyport()`.
let interopHAProxyLogFormat = #"log-format "interop-session client=%ci:%cp backend_source=%bi:%bp frontend=%fi:%fp""#

enum InteropSenderLog {
    /// Waits for HAProxy's session line for the client at `client` (`127.0.0.5:41517`)
    /// and returns its fields. HAProxy logs a TCP session when it ends.
    static func haproxySession(_ haproxy: HAProxyFixture, client: String, timeout: Duration = .seconds(10)) async throws
        -> [String: String]
    {
        let line = try await haproxy.process.waitForLogLine(containing: "interop-session client=\(client) ", timeout: timeout)
        return InteropReport.parse(line)
    }

    /// The port of `host:port` or `[v6]:port`.
    static func port(of endpoint: String?) -> Int? {
        guard let endpoint, let colon = endpoint.lastIndex(of: ":") else { return nil }
        return Int(endpoint[endpoint.index(after: colon)...])
    }

    /// nginx's source address towards the upstream for the session of `client`,
    /// from its info-level error log: `*3 client 127.0.0.5:41000 connected to ...`
    /// then `*3 proxy 127.0.0.1:52000 connected to 127.0.0.1:P`.
    static func nginxUpstreamSource(_ nginx: NginxFixture, client: String, timeout: Duration = .seconds(10)) async throws
        -> String
    {
        let found = try await poll(timeout: timeout) { () -> String? in
            let lines = nginx.log.split(separator: "\n")
            guard let clientLine = lines.first(where: { $0.contains(" client \(client) connected to ") }),
                  let session = clientLine.firstMatch(of: #/\*[0-9]+ /#)?.output
            else { return nil }
            guard let proxyLine = lines.first(where: { $0.contains("\(session)proxy ") }),
                  let source = proxyLine.firstMatch(of: #/proxy (?<source>\S+) connected to/#)?.output.source
            else { return nil }
            return String(source)
        }
        guard let found else {
            throw FixtureError("nginx logged no upstream connection for client \(client) in \(timeout); its log:\n\(tail(nginx.log))")
        }
        return found
    }
}

// MARK: - Payloads

/// `count` bytes of every value (0 to 255, so NULs, CR and LF too), from a fixed
/// seed, followed by a marker line that the bytes before it cannot contain.
func interopPayload(count: Int, seed: UInt64) -> (bytes: [UInt8], marker: [UInt8]) {
    var state = seed
    var bytes: [UInt8] = []
    bytes.reserveCapacity(count)
    for _ in 0..<count {
        // SplitMix64: a full-period generator, good enough for test bytes.
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        bytes.append(UInt8(truncatingIfNeeded: z ^ (z >> 31)))
    }
    let marker = Array("\n--end-of-interop-payload-\(seed)--\n".utf8)
    precondition(!bytes.contains(subsequence: marker))
    return (bytes + marker, marker)
}

/// Sends a payload through `client` and reads it back from the echo, byte for byte.
func expectEchoRoundTrip(_ client: TestClient, count: Int = 48 * 1024, seed: UInt64, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let payload = interopPayload(count: count, seed: seed)
    try client.send(payload.bytes)
    let echoed = try client.read(until: payload.marker, timeout: .seconds(10))
    #expect(echoed.count == payload.bytes.count, sourceLocation: sourceLocation)
    #expect(echoed == payload.bytes, "the echo differs from what was sent", sourceLocation: sourceLocation)
}

// MARK: - Running short programs

/// Runs `program` to completion and returns its output; throws (with the output) if
/// it is missing, fails or takes longer than `timeout`.
@discardableResult
func interopRun(_ program: String, _ arguments: [String], in directory: TemporaryDirectory, timeout: Duration = .seconds(30))
    async throws -> String
{
    let path: String
    do {
        path = try ManagedProcess.resolveExecutable(program)
    } catch {
        throw FixtureError("\(program) is needed by this test but is not installed (\(error))")
    }
    let process = try ManagedProcess(
        executable: path, arguments: arguments, workingDirectory: directory.path, outputDirectory: directory.path,
        name: "\(program)-\(UUID().uuidString.prefix(6))")
    defer { process.stop() }
    let termination = try await process.waitForExit(timeout: timeout)
    guard termination == .exited(0) else {
        throw FixtureError(
            "\(program) \(arguments.joined(separator: " ")) \(termination); its output:\n\(tail(process.output))")
    }
    return process.output
}

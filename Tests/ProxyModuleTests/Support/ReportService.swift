import NIOCore
import NetHost
import ProxyModule
import ProxyProtocol

/// A Lua service that says, in one line at onconnect, who it is (`service=report`)
/// and what it was told about the connection: `conn:ip() conn:port()
/// conn:serverport() conn:proxyip() conn:proxyport()` and the fields of
/// `conn:proxyheader()`, as `key=value` pairs. Then it echoes every chunk it gets, byte for byte, except the query
/// `"\0count\n"`, which it answers with how many chunks it has echoed.
enum ReportService {
    static let name = "report"

    static let source = #"""
local listener = {}
local calls = {}

local function hex(bytes)
	return (bytes:gsub(".", function (c) return ("%02x"):format(c:byte()) end))
end

local function endpoint(e)
	if e == nil then return "nil" end
	return tostring(e.ip or e.path) .. "," .. tostring(e.port)
end

local function describe(conn)
	local fields = {}
	local function add(key, value) fields[#fields + 1] = key .. "=" .. tostring(value) end
	add("service", "report")  -- which code wrote the line, whatever the connection says
	add("ip", conn:ip())
	add("port", conn:port())
	add("serverport", conn:serverport())
	add("proxyip", conn:proxyip())
	add("proxyport", conn:proxyport())
	local h = conn:proxyheader()
	if h == nil then
		add("header", nil)
		return table.concat(fields, " ")
	end
	add("version", h.version)
	add("command", h.command)
	add("family", h.family)
	add("transport", h.transport)
	add("source", endpoint(h.source))
	add("destination", endpoint(h.destination))
	add("authority", h.authority)
	add("alpn", h.alpn)
	add("unique_id", h.unique_id and hex(h.unique_id))
	add("crc32c", h.crc32c)
	if h.ssl then
		add("ssl.version", h.ssl.version)
		add("ssl.cn", h.ssl.cn)
		add("ssl.verified", h.ssl.verified)
	else
		add("ssl", nil)
	end
	local tlvs = {}
	for i, tlv in ipairs(h.tlvs) do
		tlvs[i] = ("%d:%s:%s"):format(tlv.type, tlv.name, hex(tlv.value))
	end
	add("tlvs", #tlvs > 0 and table.concat(tlvs, ",") or "none")
	return table.concat(fields, " ")
end

function listener.onconnect(conn)
	calls[conn] = 0
	conn:write(describe(conn) .. "\n")
end

function listener.onincoming(conn, data)
	if data == "\0count\n" then
		conn:write(("calls=%d\n"):format(calls[conn]))
		return
	end
	calls[conn] = calls[conn] + 1
	conn:write(data)
end

function listener.ondisconnect(conn)
	calls[conn] = nil
end

module:provides("net", { name = "report", listener = listener })
"""#

    /// Splits a report line into its `key=value` fields.
    static func fields(_ line: String) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in line.split(separator: " ") {
            guard let equals = pair.firstIndex(of: "=") else { continue }
            fields[String(pair[..<equals])] = String(pair[pair.index(after: equals)...])
        }
        return fields
    }

    /// The same line, written from the typed Swift values a Swift service gets
    /// (`connection.addresses` and `connection.proxyHeader`), by `service`.
    static func line(service: String, addresses: ConnectionAddresses, header: ProxyHeader?) -> String {
        var fields: [String] = []
        func add(_ key: String, _ value: String?) { fields.append("\(key)=\(value ?? "nil")") }
        add("service", service)
        add("ip", addresses.clientIP)
        add("port", String(addresses.clientPort))
        add("serverport", String(addresses.serverPort))
        add("proxyip", addresses.proxyIP)
        add("proxyport", addresses.proxyPort.map { String($0) })
        guard let header else {
            add("header", nil)
            return fields.joined(separator: " ")
        }
        func endpoint(_ address: String?, _ port: UInt16?) -> String {
            guard let address else { return "nil" }
            return "\(address),\(port.map { String($0) } ?? "nil")"
        }
        add("version", String(header.version.rawValue))
        add("command", header.command == .local ? "local" : "proxy")
        add("family", ["unspec", "inet", "inet6", "unix"][Int(header.family.rawValue)])
        add("transport", ["unspec", "stream", "dgram"][Int(header.transport.rawValue)])
        add("source", endpoint(header.sourceAddress, header.sourcePort))
        add("destination", endpoint(header.destinationAddress, header.destinationPort))
        add("authority", header.authority)
        add("alpn", header.alpn.map { String(decoding: $0, as: UTF8.self) })
        add("unique_id", header.uniqueID.map(hex))
        add("crc32c", header.crc32c.map { String($0) })
        if let ssl = header.ssl {
            add("ssl.version", ssl.version)
            add("ssl.cn", ssl.commonName)
            add("ssl.verified", String(ssl.hasVerifiedClientCertificate))
        } else {
            add("ssl", nil)
        }
        let tlvs = header.tlvs.map { "\($0.type):\(tlvName($0.type)):\(hex($0.value))" }
        add("tlvs", tlvs.isEmpty ? "none" : tlvs.joined(separator: ","))
        return fields.joined(separator: " ")
    }

    /// The spec's names, written out here rather than borrowed from the module.
    static func tlvName(_ type: UInt8) -> String {
        switch type {
        case 0x01: "alpn"
        case 0x02: "authority"
        case 0x03: "crc32c"
        case 0x04: "noop"
        case 0x05: "unique_id"
        case 0x20: "ssl"
        case 0x30: "netns"
        case 0xE0...0xEF: "custom"
        case 0xF0...0xF7: "experimental"
        case 0xF8...0xFF: "future"
        default: "unassigned"
        }
    }
}

func hex(_ bytes: [UInt8]) -> String {
    bytes.map { byte in
        let digits = String(byte, radix: 16)
        return digits.count == 1 ? "0" + digits : digits
    }.joined()
}

/// A Swift service, provided by a native module defined here: it reads
/// `connection.proxyHeader` and writes the same report line as the
/// Lua service (but `service=origin_swift`), then echoes.
final class OriginProbeModule: NativeModule {
    static let name = "origin_swift"
    private let context: ModuleContext

    init(context: ModuleContext) throws {
        self.context = context
    }

    func load() throws {
        try context.provide(NetService(
            name: Self.name,
            handling: .listener(OriginListener(), .anyLoop),
            module: Self.name
        ))
    }
}

final class OriginListener: ConnectionListener {
    func onConnect(_ connection: Connection) throws {
        let header = connection.proxyHeader
        connection.write(ReportService.line(service: OriginProbeModule.name, addresses: connection.addresses, header: header) + "\n")
    }

    func onIncoming(_ connection: Connection, data: ByteBuffer) throws {
        connection.write(data)
    }
}

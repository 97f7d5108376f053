import LuaBridge
import NetHost
import NetHostLua
import ProxyProtocol

/// What net_proxy adds to Lua's `conn`: `proxyip()` and `proxyport()` (the proxy's own
/// end, nil for a direct connection) and `proxyheader()` (the table below, or nil).
extension NetProxyModule {
    public static var luaConnectionMethods: [String: LuaFunction] {
        func connection(_ stack: LuaStack, _ method: String) throws -> Connection {
            try stack.checkUserdata(1, as: Connection.self, function: method)
        }
        let own: [String: LuaFunction] = [
            "proxyip": { stack in
                stack.push(try connection(stack, "proxyip").addresses.proxyIP)
                return 1
            },
            "proxyport": { stack in
                if let port = try connection(stack, "proxyport").addresses.proxyPort { stack.push(port) } else { stack.pushNil() }
                return 1
            },
            "proxyheader": { stack in
                if let header = try connection(stack, "proxyheader").proxyHeader { header.pushLuaTable(onto: stack) } else { stack.pushNil() }
                return 1
            },
        ]
        return own.merging(ProxyV2HeaderLua.methods) { first, _ in first }
    }
}

/// The parsed header as Lua's `conn:proxyheader()` returns it: the same
/// content as the Swift value, with every TLV both raw and decoded.
///
///     {
///       version = 2, command = "proxy", family = "inet", transport = "stream",
///       source = { ip = "203.0.113.7", port = 51234 },
///       destination = { ip = "192.0.2.1", port = 443 },
///       authority = "example.com", alpn = "h2", unique_id = "...",
///       ssl = { ssl = true, verified = true, version = "TLSv1.3", cn = "client", ... },
///       tlvs = { { type = 2, value = "example.com", name = "authority" }, ... },
///     }
extension ProxyHeader {
    /// Pushes the header as one Lua table. [-0, +1]
    public func pushLuaTable(onto stack: LuaStack) {
        stack.newTable(fieldCapacity: 12)
        stack.push(Int(version.rawValue))
        stack.rawSetField("version", in: -2)
        stack.push(command == .local ? "local" : "proxy")
        stack.rawSetField("command", in: -2)
        stack.push(familyName)
        stack.rawSetField("family", in: -2)
        stack.push(transportName)
        stack.rawSetField("transport", in: -2)
        pushEndpoint(address: sourceAddress, port: sourcePort, onto: stack)
        stack.rawSetField("source", in: -2)
        pushEndpoint(address: destinationAddress, port: destinationPort, onto: stack)
        stack.rawSetField("destination", in: -2)

        stack.newTable(arrayCapacity: Int32(clamping: tlvs.count))
        for (index, tlv) in tlvs.enumerated() {
            stack.newTable(fieldCapacity: 4)
            stack.push(Int(tlv.type))
            stack.rawSetField("type", in: -2)
            stack.push(bytes: tlv.value)
            stack.rawSetField("value", in: -2)
            stack.push(Self.name(of: tlv.type))
            stack.rawSetField("name", in: -2)
            stack.rawSetIndex(index + 1, in: -2)
        }
        stack.rawSetField("tlvs", in: -2)

        // Backwards, so that of repeated TLVs the first is the one left in the
        // table, as the Swift accessors (`authority`, `alpn`, ...) return it.
        for tlv in tlvs.reversed() {
            switch tlv.decoded {
            case .alpn(let bytes):
                stack.push(bytes: bytes)
                stack.rawSetField("alpn", in: -2)
            case .authority(let authority):
                stack.push(authority)
                stack.rawSetField("authority", in: -2)
            case .crc32c(let checksum):
                stack.push(Int(checksum))
                stack.rawSetField("crc32c", in: -2)
            case .uniqueID(let bytes):
                stack.push(bytes: bytes)
                stack.rawSetField("unique_id", in: -2)
            case .netns(let name):
                stack.push(name)
                stack.rawSetField("netns", in: -2)
            case .ssl(let info):
                Self.push(info, onto: stack)
                stack.rawSetField("ssl", in: -2)
            case .noop, .custom, .experimental, .future, .unassigned, .malformed:
                break  // in `tlvs`, raw
            }
        }
    }

    private var familyName: String {
        switch family {
        case .unspecified: return "unspec"
        case .inet: return "inet"
        case .inet6: return "inet6"
        case .unix: return "unix"
        }
    }

    private var transportName: String {
        switch transport {
        case .unspecified: return "unspec"
        case .stream: return "stream"
        case .datagram: return "dgram"
        }
    }

    private func pushEndpoint(address: String?, port: UInt16?, onto stack: LuaStack) {
        guard let address else {
            stack.pushNil()
            return
        }
        stack.newTable(fieldCapacity: 2)
        if family == .unix {
            stack.push(address)
            stack.rawSetField("path", in: -2)
        } else {
            stack.push(address)
            stack.rawSetField("ip", in: -2)
        }
        if let port {
            stack.push(Int(port))
            stack.rawSetField("port", in: -2)
        }
    }

    private static func push(_ info: ProxySSLInfo, onto stack: LuaStack) {
        stack.newTable(fieldCapacity: 10)
        stack.push(Int(info.client.rawValue))
        stack.rawSetField("client", in: -2)
        stack.push(info.client.contains(.ssl))
        stack.rawSetField("ssl", in: -2)
        stack.push(info.client.contains(.certificateOnConnection))
        stack.rawSetField("cert_conn", in: -2)
        stack.push(info.client.contains(.certificateInSession))
        stack.rawSetField("cert_sess", in: -2)
        stack.push(Int(info.verify))
        stack.rawSetField("verify", in: -2)
        stack.push(info.hasVerifiedClientCertificate)
        stack.rawSetField("verified", in: -2)
        let strings: [(String, String?)] = [
            ("version", info.version), ("cn", info.commonName), ("cipher", info.cipher),
            ("sig_alg", info.signatureAlgorithm), ("key_alg", info.keyAlgorithm),
        ]
        for (key, value) in strings {
            guard let value else { continue }
            stack.push(value)
            stack.rawSetField(key, in: -2)
        }
    }

    /// The spec's name of a TLV type, for `tlvs[i].name`.
    static func name(of type: UInt8) -> String {
        switch type {
        case ProxyTLV.TypeCode.alpn: return "alpn"
        case ProxyTLV.TypeCode.authority: return "authority"
        case ProxyTLV.TypeCode.crc32c: return "crc32c"
        case ProxyTLV.TypeCode.noop: return "noop"
        case ProxyTLV.TypeCode.uniqueID: return "unique_id"
        case ProxyTLV.TypeCode.ssl: return "ssl"
        case ProxyTLV.TypeCode.netns: return "netns"
        case ProxyTLV.TypeCode.custom: return "custom"
        case ProxyTLV.TypeCode.experimental: return "experimental"
        case ProxyTLV.TypeCode.future: return "future"
        default: return "unassigned"
        }
    }
}

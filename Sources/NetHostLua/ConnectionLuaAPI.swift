import LuaBridge
import NetHostCore

/// The methods of Lua's `conn` object, as Prosody's `net.server` offers them, plus
/// those native modules add (net_proxy: `proxyip`, `proxyport`, `proxyheader`).
enum ConnectionLuaAPI {
    /// The connection a Lua `conn` at `index` stands for: an incoming one, or an
    /// outgoing one that has connected.
    static func connectedConnection(_ stack: LuaStack, at index: Int32, function: String) throws -> Connection {
        if let connection = stack.userdata(at: index, as: Connection.self) { return connection }
        if let outgoing = stack.userdata(at: index, as: OutgoingConnection.self) {
            guard let connection = outgoing.connection else {
                throw LuaArgumentError(argument: index, function: function, "the outgoing connection is not connected")
            }
            return connection
        }
        return try stack.checkUserdata(index, as: Connection.self, function: function)
    }

    static func register(on stack: LuaStack, runtime: LuaRuntime, adding extra: [String: LuaFunction]) {
        unowned let runtime = runtime
        func connection(_ stack: LuaStack, _ method: String) throws -> Connection {
            if let connection = stack.userdata(at: 1, as: Connection.self) { return connection }
            // An outgoing `conn` once connected (`OutgoingLuaAPI` calls these then).
            if let connection = stack.userdata(at: 1, as: OutgoingConnection.self)?.connection { return connection }
            return try stack.checkUserdata(1, as: Connection.self, function: method)
        }
        // ip, port and family, as LuaSocket's getpeername and getsockname return them.
        func pushSocketName(_ stack: LuaStack, _ ip: String, _ port: Int) -> Int32 {
            guard !ip.isEmpty else {
                stack.pushNil()
                stack.push("not connected")
                return 2
            }
            stack.push(ip)
            stack.push(port)
            stack.push(ip.contains(":") ? "inet6" : "inet")
            return 3
        }
        func pushOptional(_ stack: LuaStack, _ value: String?) -> Int32 {
            stack.push(value)
            return 1
        }
        let methods: [String: LuaFunction] = [
            "ip": { stack in pushOptional(stack, try connection(stack, "ip").addresses.clientIP) },
            "port": { stack in
                stack.push(try connection(stack, "port").addresses.clientPort)
                return 1
            },
            "clientport": { stack in
                stack.push(try connection(stack, "clientport").addresses.clientPort)
                return 1
            },
            "serverport": { stack in
                stack.push(try connection(stack, "serverport").addresses.serverPort)
                return 1
            },
            "serverip": { stack in pushOptional(stack, try connection(stack, "serverip").addresses.serverIP) },
            "id": { stack in
                stack.push(Int(truncatingIfNeeded: try connection(stack, "id").id))
                return 1
            },
            "service": { stack in pushOptional(stack, try connection(stack, "service").serviceName) },
            "write": { stack in
                let conn = try connection(stack, "write")
                // The received bytes written back (echo, relay): send their buffer, no copy.
                let written = IncomingBytes.buffer(ifStringAt: 2, of: stack, is: runtime.incoming).map { conn.write($0) }
                    ?? stack.withStringBytes(at: 2, { conn.write($0) })
                guard let written else {
                    throw LuaArgumentError(argument: 2, function: "write", "string expected, got \(stack.typeName(at: 2))")
                }
                if written {
                    stack.push(stack.rawLength(at: 2))
                } else {
                    stack.pushNil()
                }
                return 1
            },
            "close": { stack in
                try connection(stack, "close").close()
                return 0
            },
            "pause": { stack in
                try connection(stack, "pause").pause()
                return 0
            },
            "resume": { stack in
                try connection(stack, "resume").resume()
                return 0
            },
            // The older net.server API that many modules still call.
            "lock_read": { stack in
                let conn = try connection(stack, "lock_read")
                if stack.toBoolean(at: 2) { conn.pause() } else { conn.resume() }
                return 0
            },
            "set_mode": { _ in 0 },
            "setreadtimeout": { stack in
                let conn = try connection(stack, "setreadtimeout")
                switch stack.type(at: 2) {
                case .number:
                    do throws(InvalidTimeout) {
                        try conn.setReadTimeout(seconds: stack.toNumber(at: 2) ?? 0)
                    } catch {
                        throw LuaArgumentError(argument: 2, function: "setreadtimeout", error.description)
                    }
                case .boolean where !stack.toBoolean(at: 2): conn.setReadTimeout(nil)
                default: conn.setReadTimeout(conn.configuredReadTimeout)
                }
                return 0
            },
            "setoption": { stack in
                let conn = try connection(stack, "setoption")
                let name = try stack.checkString(2, function: "setoption")
                stack.push(conn.setOption(name, stack.toBoolean(at: 3)))
                return 1
            },
            // LuaSocket's view of the socket, for modules that ask `conn:socket()` for
            // it: the conn answers getpeername, getsockname and setoption itself.
            "socket": { stack in
                _ = try connection(stack, "socket")
                stack.pushCopy(of: 1)
                return 1
            },
            // The TCP peer: behind a proxy, the proxy (conn:ip() is the client it named).
            "getpeername": { stack in
                let addresses = try connection(stack, "getpeername").addresses
                return pushSocketName(stack, addresses.proxyIP ?? addresses.clientIP, addresses.proxyPort ?? addresses.clientPort)
            },
            "getsockname": { stack in
                let addresses = try connection(stack, "getsockname").addresses
                return pushSocketName(stack, addresses.serverIP, addresses.serverPort)
            },
            "setlistener": { stack in
                let conn = try connection(stack, "setlistener")
                try stack.checkType(2, .table, function: "setlistener")
                let listener = runtime.listener(forTableAt: 2, module: conn.serviceName)
                var attachment: LuaAttachment?
                if !stack.isNil(at: 3) {
                    attachment = LuaAttachment(reference: stack.makeReference(to: 3))
                }
                conn.setListener(listener, data: attachment)
                if let attachment { stack.release(attachment.reference) }
                return 0
            },
            "ssl": { stack in
                stack.push(try connection(stack, "ssl").isTLS)
                return 1
            },
            "starttls": { stack in
                try connection(stack, "starttls").startTLS()
                return 0
            },
        ]
        OutgoingLuaAPI.register(on: stack, runtime: runtime, builtIns: methods, extras: extra)
        stack.registerUserdataType(Connection.self, methods: methods.merging(extra) { builtIn, _ in builtIn }, metamethods: [
            "__tostring": { stack in
                let conn = try connection(stack, "tostring")
                stack.push("conn(\(conn.id), \(conn.addresses.clientIP):\(conn.addresses.clientPort))")
                return 1
            },
        ])
    }
}

/// Lua holds a connection as the userdata `conn`.
extension Connection: LuaUserdata {
    public static let luaTypeName: StaticString = "conn"
}

/// A Lua error logs with its traceback.
extension LuaError: DetailedLogDescription {
    package var logDescription: String { fullDescription }
}

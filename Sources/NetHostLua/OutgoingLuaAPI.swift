import LuaBridge
import Logging
import NetHostConfig
import NetHostCore
import NIOCore

/// Lua holds an outgoing connection (`net.server.addclient`) as this userdata from
/// the start; once connected, its `Connection` shows the same value to every
/// callback (`LuaRuntime.addClient`), so the `conn` a module got back is the one
/// its listener is given.
extension OutgoingConnection: LuaUserdata {
    public static let luaTypeName: StaticString = "outgoing_conn"
}

/// The methods of an outgoing `conn`: those of every `conn` (`ConnectionLuaAPI`),
/// which, once connected, act on its `Connection`; before that, what can be done
/// without a socket (writes queue, `close` cancels, `pause` is remembered).
enum OutgoingLuaAPI {
    static func register(
        on stack: LuaStack, runtime: LuaRuntime, builtIns: [String: LuaFunction], extras: [String: LuaFunction]
    ) {
        unowned let runtime = runtime
        func outgoing(_ stack: LuaStack, _ method: String) throws -> OutgoingConnection {
            try stack.checkUserdata(1, as: OutgoingConnection.self, function: method)
        }
        func none(_ stack: LuaStack) -> Int32 {
            stack.pushNil()
            return 1
        }
        // Before the connection exists (and after it has ended).
        let unconnected: [String: (LuaStack, OutgoingConnection) throws -> Int32] = [
            "ip": { stack, conn in stack.push(conn.peerIP); return 1 },
            "port": { stack, conn in stack.push(conn.peerPort); return 1 },
            "clientport": { stack, conn in stack.push(conn.peerPort); return 1 },
            "serverport": { stack, conn in
                if let port = conn.finalAddresses?.serverPort { stack.push(port) } else { stack.pushNil() }
                return 1
            },
            "serverip": { stack, conn in stack.push(conn.finalAddresses?.serverIP); return 1 },
            "id": { stack, conn in stack.push(Int(truncatingIfNeeded: conn.id)); return 1 },
            "service": { stack, conn in stack.push(conn.serviceName); return 1 },
            "write": { stack, conn in
                guard let written = stack.withStringBytes(at: 2, { conn.write($0) }) else {
                    throw LuaArgumentError(argument: 2, function: "write", "string expected, got \(stack.typeName(at: 2))")
                }
                if written { stack.push(stack.rawLength(at: 2)) } else { stack.pushNil() }
                return 1
            },
            "close": { _, conn in conn.close(); return 0 },
            "pause": { _, conn in conn.pause(); return 0 },
            "resume": { _, conn in conn.resume(); return 0 },
            "lock_read": { stack, conn in
                if stack.toBoolean(at: 2) { conn.pause() } else { conn.resume() }
                return 0
            },
            "setlistener": { stack, conn in
                try stack.checkType(2, .table, function: "setlistener")
                // No onattach/ondetach yet: they take a connection, and there is none.
                conn.setListener(runtime.listener(forTableAt: 2, module: conn.serviceName))
                return 0
            },
            "ssl": { stack, conn in stack.push(conn.isTLS); return 1 },
            "starttls": { _, _ in
                throw LuaArgumentError("starttls: the connection is not made yet; give the TLS context to addclient instead")
            },
            "setoption": { stack, _ in stack.push(false); return 1 },
            "setreadtimeout": { _, _ in 0 },
            "set_mode": { _, _ in 0 },
        ]
        var methods: [String: LuaFunction] = [:]
        for (name, builtIn) in builtIns {
            let fallback = unconnected[name]
            methods[name] = { stack in
                let conn = try outgoing(stack, name)
                if conn.connection != nil { return try builtIn(stack) }  // ConnectionLuaAPI finds the Connection
                return try fallback?(stack, conn) ?? none(stack)
            }
        }
        // A native module's methods take a `Connection` userdata: give them one.
        for (name, extra) in extras where methods[name] == nil {
            methods[name] = { stack in
                guard let connection = try outgoing(stack, name).connection else { return none(stack) }
                stack.pushUserdata(connection)
                stack.insert(at: 1)
                stack.remove(at: 2)
                return try extra(stack)
            }
        }
        stack.registerUserdataType(OutgoingConnection.self, methods: methods, metamethods: [
            "__tostring": { stack in
                let conn = try outgoing(stack, "tostring")
                stack.push("conn(outgoing \(conn.id), \(conn.host):\(conn.port))")
                return 1
            },
        ])
    }
}

extension LuaRuntime {
    /// `net.server.addclient` underneath: `host.addclient(address, port, listeners, tls, servername)`
    /// returns the outgoing `conn` at once; the listener hears `onconnect` or `ondisconnect` later.
    func addClient(_ stack: LuaStack) throws -> Int32 {
        let address = try stack.checkString(1, function: "addclient")
        guard let port = stack.toInteger(at: 2), (1 ... 65535).contains(port) else {
            throw LuaArgumentError(argument: 2, function: "addclient", "port number expected, got \(stack.describe(at: 2))")
        }
        try stack.checkType(3, .table, function: "addclient")
        let tls = try Self.outgoingTLSOptions(stack, at: 4, serverName: stack.toString(at: 5))
        let listener = listener(forTableAt: 3, module: "net.server")
        let outgoing = OutgoingConnection(
            host: address, port: port, listener: listener, settings: outgoingSettings(), tls: tls,
            transport: outgoingTransport, eventLoop: loop, logger: logger
        )
        stack.pushUserdata(outgoing)
        // Keeps the userdata, and with it the one `conn` value, until the connection
        // has ended: then `connectionFinished` (connected) or `outgoingFailed` lets go.
        let reference = stack.makeReference(to: -1)
        let lifetime = self.lifetime
        unowned let runtime = self
        outgoing.onBind = { connection in
            guard !lifetime.isClosed, !reference.isNone else { return }
            connection.listenerSlot = reference.rawValue
            connection.finishObserver = runtime
        }
        outgoing.onFailed = { outgoing, reason in
            guard !lifetime.isClosed else { return }
            runtime.outgoingFailed(outgoing, reference: reference, reason: reason)
        }
        outgoing.start()
        return 1
    }

    /// Calls the listener's `ondisconnect(conn, reason)` for a connection never made,
    /// then lets its `conn` go.
    private func outgoingFailed(_ outgoing: OutgoingConnection, reference: LuaReference, reason: String?) {
        defer { release(reference) }
        guard !isClosed, let listener = outgoing.listener as? LuaListener else { return }
        let stack = state.stack
        let base = stack.top
        defer { stack.setTop(base) }
        stack.push(listener.table)
        guard stack.rawGetField("ondisconnect", from: -1) == .function else { return }
        stack.remove(at: -2)
        stack.push(reference)
        stack.push(reason)
        do throws(LuaError) {
            try withinBudget { () throws(LuaError) in try stack.call(arguments: 2, results: 0) }
        } catch {
            logger.error("error in ondisconnect callback: \(error.fullDescription)", metadata: [
                "out": "\(outgoing.id)", "target": "\(outgoing.host):\(outgoing.port)",
            ])
        }
    }

    /// addclient's TLS argument: nil or false, none; true (or a LuaSec context,
    /// which NetHost cannot read), verify against the system's CAs; a table of
    /// Prosody's `ssl` options: `cafile`, `verify` (false, "none", or a list holding
    /// "none", to not verify), `servername`.
    static func outgoingTLSOptions(_ stack: LuaStack, at index: Int32, serverName: String?) throws -> OutgoingTLSOptions? {
        switch stack.type(at: index) {
        case .nil, .none:
            return nil
        case .boolean:
            return stack.toBoolean(at: index) ? OutgoingTLSOptions(serverName: serverName) : nil
        case .table:
            var options = OutgoingTLSOptions(serverName: serverName)
            if stack.rawGetField("cafile", from: index) == .string { options.caFile = stack.toString(at: -1) }
            stack.pop()
            if stack.rawGetField("servername", from: index) == .string { options.serverName = stack.toString(at: -1) }
            stack.pop()
            switch stack.rawGetField("verify", from: index) {
            case .boolean: options.verify = stack.toBoolean(at: -1)
            case .string: options.verify = stack.toString(at: -1) != "none"
            case .table:
                var index = 1
                while stack.rawGetIndex(index, from: -1) != .nil {
                    if stack.toString(at: -1) == "none" { options.verify = false }
                    stack.pop()
                    index += 1
                }
                stack.pop()
            default: break
            }
            stack.pop()
            return options
        default:
            return OutgoingTLSOptions(serverName: serverName)
        }
    }

    /// `network_settings` as the config says now (a reload may change it).
    static func currentNetworkSettings(_ options: any OptionSource) -> NetworkSettings {
        var ignored: [NetworkSettings.Problem] = []  // the server reports them when it reads the config
        return NetworkSettings(from: options.value(NetworkOptions.networkSettings)?.tableValue, problems: &ignored)
    }
}

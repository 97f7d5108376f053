import LuaBridge
import NetHostCore
import NIOCore

/// A Lua listener table (`{ onconnect = ..., onincoming = ... }`) as a
/// `ConnectionListener`. Its connections live on the Lua loop, so every call
/// happens there; `NIOLoopBound` checks that at run time. It keeps the table in
/// the registry while it lives and gives the slot back when the last service or
/// connection using it lets go.
///
/// It does not own the runtime: the runtime owns the service registry (through
/// which Lua provides and removes services), the registry's services hold their
/// listeners, and a strong reference back would make a cycle that keeps every
/// runtime, its Lua state and its services alive for ever. The module manager
/// owns the runtime; `lifetime` says, from any thread, whether it has closed or
/// gone, and the listener looks before it touches it. `unowned` rather than
/// `weak`: a weak reference would give the runtime a side table and send every
/// retain and release of it, several per callback, down the slow path (see
/// `Connection.finishObserver`).
public final class LuaListener: ConnectionListener {
    private let runtime: NIOLoopBound<UnownedRuntime>
    private let lifetime: LuaRuntimeLifetime
    private let loop: any EventLoop
    /// The listener table, kept in the registry.
    let table: LuaReference
    public let wantsDrain: Bool
    /// 16 KiB when `network_settings.read_size` is not set, a quarter of a Swift
    /// service's: each read becomes a Lua string, and a peer whose connection has
    /// stopped reading (backpressure) can have pushed at most one read's worth more.
    /// Not Prosody's 8 KiB: a 16 KiB message (a TLS record's worth) then takes two
    /// reads and two `onincoming` calls, which measured 1.8 to 2.4 times the CPU per
    /// message (scripts/bench, 16 KiB echo), while a read's buffer is given back once
    /// handled, so the size no longer costs memory between reads.
    public var defaultReadSize: Int { 16 * 1024 }
    /// Its Lua state's loop, where every callback runs.
    public var homeLoop: (any EventLoop)? { loop }
    /// The module that made the listener, for error messages.
    let module: String

    init(runtime: LuaRuntime, table: LuaReference, wantsDrain: Bool, module: String) {
        self.runtime = NIOLoopBound(UnownedRuntime(runtime), eventLoop: runtime.loop)
        self.lifetime = runtime.lifetime
        self.loop = runtime.loop
        self.table = table
        self.wantsDrain = wantsDrain
        self.module = module
    }

    deinit {
        // A closed or gone runtime took the table with its Lua state. This also runs
        // while the runtime itself is going (its Lua state releases the connections
        // it still held, and they their listeners): it marked itself closed first.
        guard !lifetime.isClosed else { return }
        let (runtime, table, lifetime) = (self.runtime, self.table, self.lifetime)
        if loop.inEventLoop {
            runtime.value.runtime.release(table)
        } else {
            // The last user let go on another loop (a PROXY hand-over racing an unload).
            loop.execute {
                guard !lifetime.isClosed else { return }
                runtime.value.runtime.release(table)
            }
        }
    }

    /// The runtime, unless it has closed or gone (a connection that outlived
    /// shutdown, or a test that dropped its module manager). On the Lua loop only.
    private var liveRuntime: LuaRuntime? {
        guard !lifetime.isClosed else { return nil }
        return runtime.value.runtime
    }

    public func onConnect(_ connection: Connection) throws {
        try call("onconnect", connection)
    }

    public func onIncoming(_ connection: Connection, data: ByteBuffer) throws {
        guard let runtime = liveRuntime else { return }
        let outer = runtime.incoming
        defer { runtime.incoming = outer }
        var pinned: Int32 = 0
        try call("onincoming", connection, prepare: { stack in
            // The string stays in a slot of its own, below the function, until the
            // callback has returned: `conn:write` may recognise it by its address.
            data.withUnsafeReadableBytes { stack.push(bytes: $0) }
            stack.insert(at: -2)
            pinned = stack.top - 1
            if IncomingBytes.mayBeSentAsReceived(data), let (address, count) = stack.stringAddress(at: pinned) {
                runtime.incoming = IncomingBytes(string: address, count: count, buffer: data)
            }
        }, arguments: { stack in
            stack.pushCopy(of: pinned)
            return 1
        })
    }

    public func onDisconnect(_ connection: Connection, reason: String?) {
        do {
            try call("ondisconnect", connection) { stack in
                stack.push(reason)
                return 1
            }
        } catch {
            connection.logger.error("error in ondisconnect callback: \(ErrorDescription(error))")
        }
    }

    public func onDrain(_ connection: Connection) throws {
        try call("ondrain", connection)
    }

    public func onReadTimeout(_ connection: Connection) throws -> Bool {
        var keep = false
        try call("onreadtimeout", connection, results: 1) { stack in
            keep = stack.toBoolean(at: -1)
        }
        return keep
    }

    public func onStatus(_ connection: Connection, status: String) throws {
        try call("onstatus", connection) { stack in
            stack.push(status)
            return 1
        }
    }

    public func onDetach(_ connection: Connection) throws {
        try call("ondetach", connection)
    }

    public func onAttach(_ connection: Connection, data: (any Sendable)?) throws {
        try call("onattach", connection) { stack in
            if let attachment = data as? LuaAttachment {
                stack.push(attachment.reference)
            } else {
                stack.pushNil()
            }
            return 1
        }
    }

    /// Calls `table[name](conn, extra arguments...)` if the listener has that callback.
    /// `prepare` runs once the function is found, with it on top of the stack, and
    /// must leave it there; whatever it puts below stays until the call has returned.
    private func call(
        _ name: String,
        _ connection: Connection,
        results: Int32 = 0,
        readResults: (LuaStack) -> Void = { _ in },
        prepare: (LuaStack) -> Void = { _ in },
        arguments: (LuaStack) -> Int32 = { _ in 0 }
    ) throws {
        guard let runtime = liveRuntime else { return }  // a connection that outlived shutdown
        let stack = runtime.state.stack
        let base = stack.top
        defer { stack.setTop(base) }
        stack.push(table)
        guard stack.rawGetField(name, from: -1) == .function else { return }
        stack.remove(at: -2)
        prepare(stack)
        runtime.push(connection)
        let extra = arguments(stack)
        do throws(LuaError) {
            try runtime.withinBudget { () throws(LuaError) in try stack.call(arguments: 1 + extra, results: results) }
        } catch {
            runtime.callbackFailures.record(module: module, callback: name, budgetExceeded: LuaRuntime.isBudgetExceeded(error))
            guard LuaRuntime.isBudgetExceeded(error) else { throw error }
            throw LuaError(
                kind: .runtime,
                message: "module '\(module)': callback \(name) ran past its budget of \(runtime.instructionBudget) Lua instructions (lua_instruction_budget) and was stopped",
                traceback: error.traceback
            )
        }
        readResults(stack)
    }

    private func call(_ name: String, _ connection: Connection, arguments: (LuaStack) -> Int32) throws {
        try call(name, connection, results: 0, readResults: { _ in }, arguments: arguments)
    }

    private func call(_ name: String, _ connection: Connection, results: Int32, readResults: (LuaStack) -> Void) throws {
        try call(name, connection, results: results, readResults: readResults, arguments: { _ in 0 })
    }
}

/// The runtime a listener uses without owning it (see `LuaListener`), in a
/// value that `NIOLoopBound` can hold.
struct UnownedRuntime {
    unowned let runtime: LuaRuntime

    init(_ runtime: LuaRuntime) { self.runtime = runtime }
}

/// A Lua value handed along with `conn:setlistener(listener, data)`.
struct LuaAttachment: Sendable {
    let reference: LuaReference
}

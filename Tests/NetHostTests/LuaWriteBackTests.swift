import Logging
import LuaBridge
import NIOCore
import NIOEmbedded
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging
import NetHostTestSupport

/// `conn:write(data)` with the very string `onincoming` was given sends the
/// received buffer rather than a copy of the string (`IncomingBytes`). What
/// arrives must be exactly what the service wrote, whatever it did with `data`.
@Suite("Lua services writing back what they received", .serialized)
struct LuaWriteBackTests {
    // MARK: Recognising the received string

    @Test("the received string is recognised by its address; a copy with the same bytes is not")
    func recognisesOnlyTheReceivedString() throws {
        let lua = try LuaState()
        let stack = lua.stack
        let received = ByteBuffer(bytes: (0..<1000).map { UInt8($0 % 251) })
        received.withUnsafeReadableBytes { stack.push(bytes: $0) }
        let (address, count) = try #require(stack.stringAddress(at: -1))
        let incoming = IncomingBytes(string: address, count: count, buffer: received)

        #expect(IncomingBytes.buffer(ifStringAt: -1, of: stack, is: incoming) == received)
        // Long strings are not interned: the same bytes pushed again are another string.
        received.withUnsafeReadableBytes { stack.push(bytes: $0) }
        #expect(IncomingBytes.buffer(ifStringAt: -1, of: stack, is: incoming) == nil)
        stack.push("not it")
        #expect(IncomingBytes.buffer(ifStringAt: -1, of: stack, is: incoming) == nil)
        stack.push(1000)
        #expect(IncomingBytes.buffer(ifStringAt: -1, of: stack, is: incoming) == nil)
        #expect(IncomingBytes.buffer(ifStringAt: -4, of: stack, is: nil) == nil)
        stack.pop(4)
    }

    @Test("a few bytes in a large receive buffer are copied: a waiting send holds at most four times its bytes")
    func onlyTightBuffersAreSentAsReceived() throws {
        var large = ByteBufferAllocator().buffer(capacity: 32 * 1024)
        large.writeBytes([UInt8](repeating: 1, count: 16 * 1024))
        #expect(IncomingBytes.mayBeSentAsReceived(large))
        var small = ByteBufferAllocator().buffer(capacity: 64 * 1024)
        small.writeBytes([UInt8](repeating: 1, count: 100))
        #expect(!IncomingBytes.mayBeSentAsReceived(small))
        // A slice counts its own bytes against the whole storage it keeps.
        let slice = try #require(large.getSlice(at: 0, length: 1024))
        #expect(!IncomingBytes.mayBeSentAsReceived(slice))
    }

    // MARK: Through a connection: which bytes go out, and from where

    @Test("an echo sends the received buffer itself; a changed copy and a few bytes of a large buffer are copied")
    func sendsTheReceivedStorageOnlyForTheReceivedString() throws {
        let loop = EmbeddedEventLoop()
        let runtime = try LuaRuntime(loop: loop, options: FixedOptions(), services: ServiceRegistry(),
                                     logger: Logger(label: "test"), configDirectory: "/")
        let stack = runtime.state.stack
        try runtime.state.run("""
            return { onincoming = function (conn, data)
                local first = data:sub(1, 1)
                if first == "u" then conn:write(data:upper())
                elseif first == "!" then error("failing on purpose")
                else conn:write(data) end
            end }
            """, chunkName: "=writeback", results: 1)
        let listener = runtime.listener(forTableAt: -1, module: "writeback")
        stack.pop()
        let channel = EmbeddedChannel(loop: loop)
        try channel.pipeline.syncOperations.addHandler(
            ConnectionHandler(serviceName: "writeback", listener: listener, settings: NetworkSettings(), logger: Logger(label: "test")))
        // Stops what it starts, however the test ends: an open EmbeddedChannel and
        // its pipeline keep each other, and the connection keeps the runtime.
        defer {
            _ = try? channel.finish(acceptAlreadyClosed: true)
            runtime.close()
        }
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).wait()
        let top = stack.top

        func send(_ text: String, inBufferOf capacity: Int) throws -> (sent: ByteBuffer, out: ByteBuffer) {
            var sent = channel.allocator.buffer(capacity: capacity)
            sent.writeString(text)
            try channel.writeInbound(sent)
            return (sent, try #require(try channel.readOutbound(as: ByteBuffer.self)))
        }
        func storage(_ buffer: ByteBuffer) -> UnsafeRawPointer? {
            buffer.withUnsafeReadableBytes { $0.baseAddress.map { UnsafeRawPointer($0) } }
        }

        let echo = try send(String(repeating: "e", count: 16384), inBufferOf: 32768)
        #expect(echo.out == echo.sent)
        #expect(storage(echo.out) == storage(echo.sent), "the echo was copied")

        let upper = try send("u" + String(repeating: "x", count: 16383), inBufferOf: 32768)
        #expect(upper.out == ByteBuffer(string: "U" + String(repeating: "X", count: 16383)))
        #expect(storage(upper.out) != storage(upper.sent))

        let few = try send("hello", inBufferOf: 65536)
        #expect(few.out == few.sent)
        #expect(storage(few.out) != storage(few.sent), "5 bytes of a 64 KiB buffer went out without a copy")

        #expect(runtime.incoming == nil)
        #expect(stack.top == top)

        // A failing callback closes its connection and leaves nothing behind either.
        var failing = channel.allocator.buffer(capacity: 64)
        failing.writeString("!")
        try channel.writeInbound(failing)
        #expect(runtime.incoming == nil)
        #expect(stack.top == top)
        #expect(!channel.isActive)
    }

    // MARK: Over TCP: what the client gets back

    /// Each connection's first line picks what the service does with every later
    /// chunk; the service acknowledges it, so the line never shares a read with data.
    static let module = #"""
    local modes, peers = {}, {}
    local waiting

    local listener = {}

    function listener.onincoming(conn, data)
    	local mode = modes[conn]
    	if not mode then
    		mode = assert(data:match("^(%a+)\n$"), "expected a mode line")
    		modes[conn] = mode
    		if mode ~= "pair" then
    			conn:write("ok\n")
    		elseif waiting then
    			peers[conn], peers[waiting] = waiting, conn
    			waiting:write("ok\n")
    			conn:write("ok\n")
    			waiting = nil
    		else
    			waiting = conn
    		end
    		return
    	end
    	if mode == "echo" then
    		conn:write(data)
    	elseif mode == "upper" then
    		conn:write(data:upper())
    	elseif mode == "collect" then
    		-- However the collector treats the received string meanwhile, the
    		-- new string is what goes out.
    		local n = #data
    		data = nil
    		collectgarbage()
    		collectgarbage()
    		conn:write(string.rep("z", n))
    	elseif mode == "pair" then
    		peers[conn]:write(data)
    	end
    end

    function listener.ondisconnect(conn)
    	modes[conn], peers[conn] = nil, nil
    	if waiting == conn then waiting = nil end
    end

    module:provides("net", { name = "writeback", listener = listener })
    """#

    /// 48 KiB: many reads of every size the receive buffer grows through.
    private static let payload: [UInt8] = TestBytes.pseudoRandom(count: 48 * 1024)

    private func withService(_ body: (HostFixture) async throws -> Void) async throws {
        try await HostFixture.running(
            modules: ["writeback": Self.module],
            options: ["modules_enabled": .strings("writeback"), "writeback_ports": .list(.integer(0))],
            body)
    }

    @Test("what comes back is what the service wrote: the data itself, a changed copy, or a new string", arguments: [
        "echo", "upper", "collect",
    ])
    func writesWhatTheServiceWrote(mode: String) async throws {
        try await withService { fixture in
            let client = try fixture.connect(to: "writeback")
            try client.send("\(mode)\n")
            #expect(try client.readLine() == "ok")
            try client.send(Self.payload)
            let expected = switch mode {
            case "upper": Self.payload.map { (0x61...0x7A).contains($0) ? $0 - 0x20 : $0 }
            case "collect": [UInt8](repeating: UInt8(ascii: "z"), count: Self.payload.count)
            default: Self.payload
            }
            let got = try client.read(count: expected.count)
            #expect(got == expected, "mode \(mode): first difference at byte \(Self.firstDifference(got, expected))")
        }
    }

    @Test("a relay writes each side's data to the other, byte for byte")
    func relaysBetweenConnections() async throws {
        try await withService { fixture in
            let first = try fixture.connect(to: "writeback")
            try first.send("pair\n")
            let second = try fixture.connect(to: "writeback")
            try second.send("pair\n")
            #expect(try first.readLine() == "ok")
            #expect(try second.readLine() == "ok")
            try first.send(Self.payload)
            let atSecond = try second.read(count: Self.payload.count)
            #expect(atSecond == Self.payload, "first difference at byte \(Self.firstDifference(atSecond, Self.payload))")
            let back = Array(Self.payload.reversed())
            try second.send(back)
            let atFirst = try first.read(count: back.count)
            #expect(atFirst == back, "first difference at byte \(Self.firstDifference(atFirst, back))")
        }
    }

    private static func firstDifference(_ a: [UInt8], _ b: [UInt8]) -> Int {
        zip(a, b).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(a.count, b.count)
    }
}

import Foundation
import NIOCore
import NetHostTestSupport
import Testing
@testable import NetHost
@testable import NetHostCore

/// A native module's service relaying each client to a backend with
/// `ModuleContext.connect`: the typed Swift API over the same machinery as Lua's.
final class SwiftRelayModule: NativeModule {
    static let name = "swift_relay"
    static let backendPort = OptionDeclaration("swift_relay_backend_port", .integer, default: "none", scope: .global, help: "test")
    static var declaredOptions: [OptionDeclaration] { [backendPort] }
    let context: ModuleContext
    init(context: ModuleContext) throws { self.context = context }

    func load() throws {
        let port = context.option(Self.backendPort)?.integerValue ?? 0
        try context.provide(NetService(
            name: Self.name, handling: .listener(ClientSide(context: context, backendPort: port), .anyLoop), module: Self.name
        ))
    }

    /// Each client: an outgoing connection to the backend, then bytes both ways.
    final class ClientSide: ConnectionListener {
        let context: ModuleContext
        let backendPort: Int
        init(context: ModuleContext, backendPort: Int) {
            self.context = context
            self.backendPort = backendPort
        }

        func onConnect(_ connection: Connection) throws {
            let backend = BackendSide(client: connection)
            let outgoing = try context.connect(host: "127.0.0.1", port: backendPort, listener: backend, on: connection.eventLoop)
            connection.setListener(Paired(outgoing: outgoing))
        }

        func onIncoming(_ connection: Connection, data: ByteBuffer) throws {}
    }

    final class Paired: ConnectionListener {
        let outgoing: NIOLoopBound<OutgoingConnection>
        init(outgoing: OutgoingConnection) { self.outgoing = NIOLoopBound(outgoing, eventLoop: outgoing.eventLoop) }
        func onIncoming(_ connection: Connection, data: ByteBuffer) throws { outgoing.value.write(data) }
        func onDisconnect(_ connection: Connection, reason: String?) { outgoing.value.close() }
    }

    final class BackendSide: OutgoingConnectionListener {
        let client: NIOLoopBound<Connection>
        init(client: Connection) { self.client = NIOLoopBound(client, eventLoop: client.eventLoop) }
        func onConnect(_ connection: Connection) throws { client.value.write("backend \(connection.addresses.clientIP)\n") }
        func onIncoming(_ connection: Connection, data: ByteBuffer) throws { client.value.write(data) }
        func onDisconnect(_ connection: Connection, reason: String?) { client.value.close() }
        func onConnectFailed(_ outgoing: OutgoingConnection, reason: String?) {
            client.value.write("failed: \(reason ?? "closed")\n")
            client.value.close()
        }
    }
}

@Suite("Swift services: outgoing connections (ModuleContext.connect)", .serialized)
struct SwiftOutgoingTests {
    private func withRelay(backendPort: Int, _ body: (HostFixture) async throws -> Void) async throws {
        let fixture = try HostFixture(modules: [:])
        do {
            try await fixture.start(options: [
                "modules_enabled": .strings(SwiftRelayModule.name),
                "swift_relay_ports": .list(.integer(0)),
                "swift_relay_backend_port": .integer(backendPort),
            ], natives: BuiltinModules.all + [SwiftRelayModule.self])
            try await body(fixture)
        } catch {
            await fixture.stop()
            throw error
        }
        await fixture.stop()
    }

    @Test("a Swift service connects to an echo backend and relays a line both ways")
    func relay() async throws {
        let backend = try LoopbackBackend(mode: .echo)
        defer { backend.shutdown() }
        try await withRelay(backendPort: backend.port) { fixture in
            let client = try fixture.connect(to: SwiftRelayModule.name)
            try client.send("ping\n")  // may arrive before the backend connection: it waits
            #expect(try client.readLine() == "backend 127.0.0.1")
            #expect(try client.readLine() == "ping")
        }
    }

    @Test("a refused backend: onConnectFailed with 'connection refused'")
    func refused() async throws {
        let port = try FreePort.allocate()
        try await withRelay(backendPort: port) { fixture in
            let client = try fixture.connect(to: SwiftRelayModule.name)
            #expect(try client.readLine() == "failed: connection refused")
        }
    }
}

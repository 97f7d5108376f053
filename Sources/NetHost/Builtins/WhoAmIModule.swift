import NetHostCore
import NIOCore

/// Native module `demo_whoami`: a Swift service that answers each connection with
/// the client's address and port ("203.0.113.7 51234\n") and closes. Behind
/// `net_proxy` it shows the address the proxy reported; it is also what the
/// benchmarks measure connection cost with.
public final class WhoAmIModule: NativeModule {
    public static let name = "demo_whoami"
    private let context: ModuleContext

    public init(context: ModuleContext) throws {
        self.context = context
    }

    public func load() throws {
        try context.provide(NetService(
            name: "demo_whoami",
            handling: .listener(WhoAmIListener(), .anyLoop),
            module: Self.name
        ))
    }
}

final class WhoAmIListener: ConnectionListener {
    func onConnect(_ connection: Connection) throws {
        connection.write("\(connection.addresses.clientIP) \(connection.addresses.clientPort)\n")
        connection.close()
    }

    func onIncoming(_ connection: Connection, data: ByteBuffer) throws {}
}

import NetHostCore
import NIOCore

/// Native module `demo_echo_swift`: a Swift echo service that runs on every core,
/// the Swift counterpart of `modules/mod_demo_echo.lua`.
public final class SwiftEchoModule: NativeModule {
    public static let name = "demo_echo_swift"
    private let context: ModuleContext

    public init(context: ModuleContext) throws {
        self.context = context
    }

    public func load() throws {
        try context.provide(NetService(
            name: "demo_echo_swift",
            handling: .listener(SwiftEchoListener(), .anyLoop),
            module: Self.name
        ))
    }
}

final class SwiftEchoListener: ConnectionListener {
    func onIncoming(_ connection: Connection, data: ByteBuffer) throws {
        connection.write(data)
    }
}

/// The native modules NetHost itself ships (net_proxy lives in ProxyModule).
public enum BuiltinModules {
    public static let all: [any NativeModule.Type] = [WhoAmIModule.self, SwiftEchoModule.self, AgentCheckModule.self]
}

import NetHostCore
import NIOCore

extension ModuleContext {
    /// Why `connect` could not start.
    public struct ConnectError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Opens an outgoing connection for a Swift service, as Lua's `net.server.addclient`
    /// does: `host` is a name (resolved off the event loop, its addresses tried in
    /// turn) or an IPv6 or IPv4 address; `tls` asks for TLS, the peer verified by
    /// default. Returns at once; `listener` then hears `onConnect` and the usual
    /// callbacks, or, if it is an `OutgoingConnectionListener`, `onConnectFailed`.
    /// Writes before the connection is made wait in the returned object.
    ///
    /// The connection lives on `loop`, which must be the loop this is called on (a
    /// connection's callback runs on its `eventLoop`: pass that, and a relay's two
    /// ends share a loop, so NetHost's backpressure holds between them).
    public func connect(
        host: String, port: Int, listener: any ConnectionListener, tls: OutgoingTLSOptions? = nil,
        on loop: any EventLoop, transport: any OutgoingTransport = PosixOutgoingTransport()
    ) throws -> OutgoingConnection {
        guard loop.inEventLoop else {
            throw ConnectError(description: "connect(host:port:...) must be called on the event loop it is given")
        }
        guard (1 ... 65535).contains(port) else { throw ConnectError(description: "\(port) is not a port number") }
        var ignored: [NetworkSettings.Problem] = []  // the server reports them when it reads the config
        let settings = NetworkSettings(from: options.value(NetworkOptions.networkSettings)?.tableValue, problems: &ignored)
        let outgoing = OutgoingConnection(
            host: host, port: port, listener: listener, serviceName: name, settings: settings, tls: tls,
            transport: transport, eventLoop: loop, logger: logger
        )
        outgoing.start()
        return outgoing
    }
}

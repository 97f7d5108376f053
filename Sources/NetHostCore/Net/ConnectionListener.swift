import NIOCore

/// The callbacks of a network service, shared by Lua and Swift services.
///
/// A listener's methods are called on the event loop of the connection they
/// are given, in this order: `onConnect`, `onIncoming` for each chunk,
/// `onDrain` when the send buffer empties, `onDisconnect` exactly once at the end.
/// A thrown error is logged and closes that one connection.
public protocol ConnectionListener: AnyObject, Sendable {
    func onConnect(_ connection: Connection) throws
    func onIncoming(_ connection: Connection, data: ByteBuffer) throws
    func onDisconnect(_ connection: Connection, reason: String?)
    func onDrain(_ connection: Connection) throws
    /// Return true to keep the connection open after a read timeout.
    func onReadTimeout(_ connection: Connection) throws -> Bool
    func onStatus(_ connection: Connection, status: String) throws
    /// The connection is moving to another listener.
    func onDetach(_ connection: Connection) throws
    /// The connection has arrived from another listener; `data` is what `setListener` was given.
    func onAttach(_ connection: Connection, data: (any Sendable)?) throws
    /// Whether the listener wants `onDrain` at all (sparing the bookkeeping when not).
    var wantsDrain: Bool { get }
    /// The largest single read for its connections when `network_settings.read_size`
    /// is not set: `NetworkSettings.defaultReadSize` unless the listener says otherwise.
    var defaultReadSize: Int { get }
    /// The one event loop the listener's callbacks must run on (a Lua listener: its
    /// Lua state's loop); nil for a listener that runs on any loop.
    var homeLoop: (any EventLoop)? { get }
}

extension ConnectionListener {
    public func onConnect(_ connection: Connection) throws {}
    public func onDisconnect(_ connection: Connection, reason: String?) {}
    public func onDrain(_ connection: Connection) throws {}
    public func onReadTimeout(_ connection: Connection) throws -> Bool { false }
    public func onStatus(_ connection: Connection, status: String) throws {}
    public func onDetach(_ connection: Connection) throws {}
    public func onAttach(_ connection: Connection, data: (any Sendable)?) throws {}
    public var wantsDrain: Bool { false }
    public var defaultReadSize: Int { NetworkSettings.defaultReadSize }
    public var homeLoop: (any EventLoop)? { nil }
}

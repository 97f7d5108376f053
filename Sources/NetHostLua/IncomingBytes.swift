import LuaBridge
import NIOCore

/// The bytes an `onincoming` callback was given, both as the Lua string it
/// received and as the buffer they were read into.
///
/// Services that pass data on unchanged (echo, relays between two connections)
/// call `conn:write(data)` with that very string. Copying it into a new buffer
/// for sending was, with making the string, most of what a Lua service adds to
/// a 16 KiB message; the write sends the received buffer instead. Lua strings
/// are immutable, and the runtime keeps the string alive on its own stack for
/// the whole callback, so while it runs no other string can have its address:
/// the same address means the same bytes.
struct IncomingBytes {
    let string: UnsafeRawPointer
    let count: Int
    let buffer: ByteBuffer

    /// Whether `buffer` may be sent as it is. A send that waits for the peer keeps the
    /// buffer's whole storage (and `max_send_buffer_size` counts all of it): a few
    /// bytes read into a large receive buffer are copied instead. (A write made while
    /// the connection's backlog waits is copied or kept by `SendBacklog`'s own rule.)
    static func mayBeSentAsReceived(_ buffer: ByteBuffer) -> Bool {
        buffer.readableBytes * 4 >= buffer.storageCapacity
    }

    /// `buffer` if the string at `index` is the received one.
    static func buffer(ifStringAt index: Int32, of stack: LuaStack, is incoming: IncomingBytes?) -> ByteBuffer? {
        guard let incoming, let (pointer, count) = stack.stringAddress(at: index),
              pointer == incoming.string, count == incoming.count
        else { return nil }
        return incoming.buffer
    }
}

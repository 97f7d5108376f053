import Logging
import NetHostLogging
import NIOCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The first handler of every listening socket: when `accept` fails for want of a
/// resource (EMFILE: the process is out of file descriptors; ENFILE, ENOBUFS,
/// ENOMEM) it stops reading the socket for ``pause`` and then tries again, and it
/// logs why accepting failed.
///
/// Such a failure leaves the connection in the listen backlog, so the socket stays
/// readable. Retrying at once would be a busy loop at 100% of a core for as long as
/// the condition lasts, slowing every connection on that event loop. NIO's
/// `AcceptBackoffHandler` does not prevent it when the first `accept` of a wake-up
/// fails: the channel's read is then still pending, so no new `read()` reaches the
/// handler to be delayed and the socket stays registered for readability. This
/// handler turns `autoRead` off instead, which takes the socket out of the
/// selector, and back on after the pause. The connections that waited in the
/// backlog are then accepted as usual.
///
/// Failures go through a `RepeatedEventLog` keyed by listener: the first is logged,
/// the repeats (about one per pause while the condition lasts) are counted into the
/// next summary.
final class AcceptPauseHandler: ChannelInboundHandler {
    typealias InboundIn = any Channel
    typealias InboundOut = any Channel

    /// How long accepting stops after a failure for want of a resource.
    static let pause: TimeAmount = .seconds(1)

    /// Turns the listening socket's reading (`autoRead`) off or on; throws if the
    /// channel is gone. (A test watches it instead: an `EmbeddedChannel` ignores `autoRead`.)
    typealias ReadingSwitch = (_ channel: any Channel, _ on: Bool) throws -> Void

    static func autoRead(_ channel: any Channel, _ on: Bool) throws {
        guard let options = channel.syncOptions else { throw ChannelError.operationUnsupported }
        try options.setOption(.autoRead, value: on)
    }

    private let events: RepeatedEventLog
    private let serviceName: String
    private let setReading: ReadingSwitch
    private var resume: Scheduled<Void>?

    init(events: RepeatedEventLog, serviceName: String, setReading: @escaping ReadingSwitch = AcceptPauseHandler.autoRead) {
        self.events = events
        self.serviceName = serviceName
        self.setReading = setReading
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let ioError = error as? IOError {
            let listener = context.channel.localAddress.map(\.logText) ?? "?"
            events.record(
                Self.message(for: ioError.errnoCode), from: listener, level: .error,
                metadata: ["service": "\(serviceName)"]
            )
            if Self.isOutOfResources(ioError.errnoCode) {
                pauseAccepting(context: context)
            }
        }
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        resume?.cancel()
        resume = nil
        context.fireChannelInactive()
    }

    /// Removed while paused, it leaves the socket accepting again.
    func handlerRemoved(context: ChannelHandlerContext) {
        guard let resume else { return }
        resume.cancel()
        self.resume = nil
        try? setReading(context.channel, true)
    }

    /// Stops reading for `pause` of the loop's clock; a failure while paused changes nothing.
    private func pauseAccepting(context: ChannelHandlerContext) {
        guard resume == nil else { return }
        let channel = context.channel
        do {
            try setReading(channel, false)
        } catch {
            return  // closed meanwhile: nothing to resume
        }
        resume = context.eventLoop.assumeIsolated().scheduleTask(in: Self.pause) { [self] in
            resume = nil
            try? setReading(channel, true)
        }
    }

    /// Errors that leave the connection in the backlog until a resource frees up.
    /// (Others, such as ECONNABORTED, concern one connection, which is gone.)
    static func isOutOfResources(_ errnoCode: Int32) -> Bool {
        errnoCode == EMFILE || errnoCode == ENFILE || errnoCode == ENOBUFS || errnoCode == ENOMEM
    }

    /// What an `accept` error means, in words an operator can act on.
    static func message(for errnoCode: Int32) -> String {
        let paused = "new connections wait in the listen backlog; accepting again every second"
        switch errnoCode {
        case EMFILE:
            let limit = DescriptorLimit.current.map { " (\($0))" } ?? ""
            return "out of file descriptors: the process's limit\(limit) is reached (ulimit -n, LimitNOFILE); \(paused)"
        case ENFILE:
            return "out of file descriptors: the system's limit is reached (fs.file-max); \(paused)"
        case ENOBUFS, ENOMEM:
            return "out of memory for a new connection (\(String(cString: strerror(errnoCode)))); \(paused)"
        default:
            return "accept failed: \(String(cString: strerror(errnoCode)))"
        }
    }
}

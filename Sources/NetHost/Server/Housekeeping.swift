import NetHostCore
import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// What the server does every ten seconds, whatever the traffic: the summaries of
/// repeated refusals, accept errors and failed handshakes, then freed memory back
/// to the system.
enum Housekeeping {
    static let interval = TimeAmount.seconds(10)

    /// Runs on `loop`'s clock (virtual time on an `EmbeddedEventLoop`).
    static func schedule(
        on loop: any EventLoop, limiter: ConnectionLimiter, ports: PortManager, tls: TLSContexts
    ) -> RepeatedTask {
        loop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
            limiter.flushSummaries()
            ports.flushSummaries()
            tls.flushSummaries()
            returnFreedMemory()
        }
    }

    /// After a burst of connections (a flood, a reconnect storm) glibc keeps the
    /// freed memory in its arenas; handing it back lets the process shrink to its
    /// working size again. Cheap when there is nothing to return.
    private static func returnFreedMemory() {
        #if canImport(Glibc)
        _ = mallocTrim?(0)
        #endif
    }

    #if canImport(Glibc)
    /// glibc's malloc_trim, which Swift's Glibc module does not import (malloc.h).
    private static let mallocTrim: (@convention(c) (Int) -> Int32)? = {
        guard let symbol = dlsym(nil, "malloc_trim") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int) -> Int32).self)
    }()
    #endif
}

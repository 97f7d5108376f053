import Logging
import NetHostLogging
import NIOCore
import Synchronization

/// The bounds every TLS handshake of the process is held to (issue 14), shared by
/// every TLS context, those loaded before a reload too, so that a reload changes
/// them for all new handshakes:
///
/// - `ssl_handshake_timeout`: a handshake must finish within it, or the connection
///   is closed (`TLSHandshakeTimeoutHandler`). Without it a client that connects and
///   never sends its hello was held until read_timeout (840 s).
/// - `ssl_max_handshakes_per_second`: past it a new TLS connection is closed before
///   its handshake starts, as HAProxy's `maxsslrate`, so a flood of hellos cannot
///   spend every cycle of a loop on key exchanges.
///
/// Atomics only on the connection path: no lock is taken to admit a handshake, arm
/// its timer or count a refusal.
public final class TLSHandshakeLimits: Sendable {
    /// As Prosody's server_epoll (`ssl_handshake_timeout = 60`) and nginx's ssl_handshake_timeout.
    public static let defaultTimeout: Double = 60

    /// The default of `ssl_max_handshakes_per_second`. A server-side handshake with an
    /// RSA-2048 certificate costs one private-key signature, about 0.7 ms of one core
    /// on the machine of issue 14, where 1,358 hellos a second kept the Lua loop at
    /// 100 %; and every connection of a Lua service, so every handshake, runs on that
    /// one loop. 1,000 a second leaves that loop about a quarter of its time for the
    /// connections it already serves under a flood of hellos, and is still far above
    /// what a Prosody-style server sees legitimately: 60,000 new TLS clients a minute,
    /// and a refused client reconnects. An ECDSA certificate makes handshakes several
    /// times cheaper: raise it then (or on many cores with Swift services); 0 lifts it.
    public static let defaultMaximumPerSecond = 1000
    /// Above this the limit means nothing (no machine handshakes a million times a
    /// second), and it keeps the arithmetic below far from overflowing.
    public static let maximumPerSecondCeiling = 1_000_000

    private static let second: Int64 = 1_000_000_000

    private let timeoutNanoseconds = Atomic<Int64>(Int64(defaultTimeout * 1e9))
    private let perSecond = Atomic<Int>(defaultMaximumPerSecond)
    /// The token bucket, as GCRA keeps it: the time on the loops' clock (uptime
    /// nanoseconds, the same on every loop) at which the bucket will be full again.
    private let bucketFullAt = Atomic<Int64>(0)
    private let timedOutCount = Atomic<Int>(0)
    private let refusedCount = Atomic<Int>(0)
    /// Refusals since the last summary: the first is logged, the rest counted.
    private let refusedSinceSummary = Atomic<Int>(0)
    /// Where timeouts are logged: with failed handshakes, once per client, then summarised.
    private let failures: RepeatedEventLog
    private let logger: Logger

    public init(failures: RepeatedEventLog, logger: Logger) {
        self.failures = failures
        self.logger = logger
    }

    /// `ssl_handshake_timeout`; a reload may change it for handshakes that start after.
    public var timeout: TimeAmount {
        get { .nanoseconds(timeoutNanoseconds.load(ordering: .relaxed)) }
        set { timeoutNanoseconds.store(newValue.nanoseconds, ordering: .relaxed) }
    }

    /// `ssl_max_handshakes_per_second`, 0 for no limit; clamped to `maximumPerSecondCeiling`.
    public var maximumPerSecond: Int {
        get { perSecond.load(ordering: .relaxed) }
        set { perSecond.store(min(max(newValue, 0), Self.maximumPerSecondCeiling), ordering: .relaxed) }
    }

    /// Handshakes closed at the timeout since start.
    public var timedOut: Int { timedOutCount.load(ordering: .relaxed) }
    /// TLS connections closed before their handshake by the rate limit since start.
    public var refused: Int { refusedCount.load(ordering: .relaxed) }

    // MARK: Rate

    /// Whether a handshake may start at `now` (the connection's loop's clock). A
    /// token bucket holding one second's worth, refilled continuously: N (the
    /// limit) may start at once, then one every 1/N s. One compare-and-swap on the
    /// way in; a refusal is counted, and logged if it is the first since the last
    /// summary. `client`: for that line.
    func admit(now: NIODeadline, client: ConnectionAddresses?) -> Bool {
        let limit = maximumPerSecond
        guard limit > 0 else { return true }
        let interval = Self.second / Int64(limit)
        // What the bucket holds, in time: exactly `limit` intervals (`interval` is rounded down).
        let capacity = interval * Int64(limit)
        let now = Int64(clamping: now.uptimeNanoseconds)
        var fullAt = bucketFullAt.load(ordering: .relaxed)
        while true {
            let next = max(fullAt, now) + interval
            guard next - now <= capacity else {
                refuse(limit: limit, client: client)
                return false
            }
            let (exchanged, original) = bucketFullAt.compareExchange(expected: fullAt, desired: next, ordering: .relaxed)
            if exchanged { return true }
            fullAt = original
        }
    }

    /// What the log and `ondisconnect` say of a refusal.
    func refusal(limit: Int) -> String {
        "ssl_max_handshakes_per_second (\(limit)) reached: new TLS connections are closed before their handshake"
    }

    /// What `ondisconnect` is told when STARTTLS is refused.
    var refusalReason: String { "TLS refused: ssl_max_handshakes_per_second (\(maximumPerSecond)) reached" }

    private func refuse(limit: Int, client: ConnectionAddresses?) {
        refusedCount.wrappingAdd(1, ordering: .relaxed)
        // One line when refusals begin, whoever from: the limit is the process's, not a client's.
        guard refusedSinceSummary.wrappingAdd(1, ordering: .relaxed).oldValue == 0 else { return }
        var metadata: Logger.Metadata = [:]
        if let client {
            metadata["peer"] = "\(client.clientIP)"
            if let proxy = client.proxyIP { metadata["proxy"] = "\(proxy)" }
        }
        logger.warning("\(refusal(limit: limit))", metadata: metadata)
    }

    // MARK: Timeout

    /// A handshake did not finish within the timeout: counted, and logged at info with
    /// the client (through `net_proxy`, the proxied client), once per client, then
    /// summarised with the failed handshakes. Returns the reason, for `ondisconnect`.
    func timedOut(client: String, proxy: String?, service: String?, after timeout: TimeAmount) -> String {
        timedOutCount.wrappingAdd(1, ordering: .relaxed)
        let reason = "TLS handshake timed out: not finished within ssl_handshake_timeout (\(Self.seconds(timeout)) s)"
        var metadata: Logger.Metadata = [:]
        if let service { metadata["service"] = "\(service)" }
        if let proxy { metadata["proxy"] = "\(proxy)" }
        failures.record(reason, from: client, level: .info, metadata: metadata)
        return reason
    }

    /// Logs the count of refusals since the last summary, if more than the one logged.
    func flush() {
        let refusals = refusedSinceSummary.exchange(0, ordering: .relaxed)
        guard refusals > 1 else { return }
        logger.warning("\(refusal(limit: maximumPerSecond)) (repeated \(refusals - 1) more times)")
    }

    /// 5 s as "5", 0.25 s as "0.25".
    static func seconds(_ amount: TimeAmount) -> String {
        seconds(Double(amount.nanoseconds) / 1e9)
    }

    static func seconds(_ value: Double) -> String {
        value.rounded() == value && abs(value) < 1e15 ? "\(Int(value))" : "\(value)"
    }
}

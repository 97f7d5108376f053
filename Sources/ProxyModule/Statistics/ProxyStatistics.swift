import Metrics
import NIOConcurrencyHelpers

/// What happened to the connections of each PROXY port, counted. Each count is
/// also reported through swift-metrics as `nethost_proxy_connections_total`
/// with `port` and `outcome` dimensions, and the outcomes that have reasons as
/// `nethost_proxy_rejections_total` with `port`, `outcome` and `reason`.
public final class ProxyStatistics: Sendable {
    /// How a connection on a PROXY port ended its header phase.
    public enum Outcome: String, Sendable, CaseIterable {
        /// A PROXY header with addresses: handed over with the client's address.
        case proxied
        /// A v2 LOCAL header (a proxy's health check): handed over with the real addresses.
        case local
        /// v1 UNKNOWN, v2 UNSPEC or UNIX: handed over with the real addresses.
        case unknownAddresses = "unknown_addresses"
        /// The peer is not in proxy_trusted_proxies: closed before reading.
        case untrusted
        /// Still waiting for its header when a new connection went over a pending-header
        /// budget, and the oldest waiting: closed to admit the new one. Counted by reason,
        /// `perAddress` (max_pending_headers_per_ip) or `global` (proxy_max_pending_headers).
        case shed
        /// The header was malformed: closed.
        case invalid
        /// The header did not arrive within proxy_header_timeout: closed.
        case timeout
        /// The peer hung up before the header was complete.
        case closedEarly = "closed_early"
        /// The port has no mapping, or maps to a service nobody provides: closed.
        case noService = "no_service"
        /// A valid header, but the service's stages could not be added (a TLS
        /// service without a certificate, say): closed.
        case handOverFailed = "hand_over_failed"
    }

    private struct Key: Hashable {
        let port: Int
        let outcome: Outcome
    }

    private struct Count {
        var value = 0
        /// Made once per port and outcome: creating a swift-metrics counter per
        /// connection would cost a factory look-up and an allocation each time.
        let metric: Counter
    }

    private struct ReasonKey: Hashable {
        let port: Int
        let outcome: Outcome
        let reason: String
    }

    private let counts = NIOLockedValueBox<[Key: Count]>([:])
    /// The outcomes that have reasons (`invalid`, `shed`), by reason.
    private let reasons = NIOLockedValueBox<[ReasonKey: Count]>([:])

    /// Per port: from accept to a complete header, and from accept to the service
    /// having the connection (its stages added, its onconnect run).
    private struct Timers {
        let header: Timer
        let handOver: Timer
    }

    private let timers = NIOLockedValueBox<[Int: Timers]>([:])

    public init() {}

    private func timers(port: Int) -> Timers {
        timers.withLockedValue { timers in
            if let made = timers[port] { return made }
            // Made once per port, as the counters are.
            let dimensions = [("port", String(port))]
            let made = Timers(
                header: Timer(label: "nethost_proxy_header_seconds", dimensions: dimensions),
                handOver: Timer(label: "nethost_proxy_handoff_seconds", dimensions: dimensions)
            )
            timers[port] = made
            return made
        }
    }

    /// A header on `port` was complete this long after its connection was accepted.
    func recordHeaderTime(port: Int, nanoseconds: Int64) {
        timers(port: port).header.recordNanoseconds(nanoseconds)
    }

    /// A connection on `port` was handed to its service this long after it was accepted.
    func recordHandOverTime(port: Int, nanoseconds: Int64) {
        timers(port: port).handOver.recordNanoseconds(nanoseconds)
    }

    func record(_ outcome: Outcome, port: Int, reason: String? = nil) {
        let metric = counts.withLockedValue { counts -> Counter in
            let key = Key(port: port, outcome: outcome)
            var count = counts[key] ?? Count(metric: Counter(label: "nethost_proxy_connections_total", dimensions: [
                ("port", String(port)), ("outcome", outcome.rawValue),
            ]))
            count.value += 1
            counts[key] = count
            return count.metric
        }
        metric.increment()
        if let reason {
            let metric = reasons.withLockedValue { reasons -> Counter in
                let key = ReasonKey(port: port, outcome: outcome, reason: reason)
                var count = reasons[key] ?? Count(metric: Counter(label: "nethost_proxy_rejections_total", dimensions: [
                    ("port", String(port)), ("outcome", outcome.rawValue), ("reason", reason),
                ]))
                count.value += 1
                reasons[key] = count
                return count.metric
            }
            metric.increment()
        }
    }

    public func count(_ outcome: Outcome, port: Int) -> Int {
        counts.withLockedValue { $0[Key(port: port, outcome: outcome)]?.value ?? 0 }
    }

    /// Rejected headers by reason (truncated, badSignature, crcMismatch, ...), all ports.
    public func invalidCount(reason: String) -> Int {
        count(.invalid, reason: reason)
    }

    /// `outcome`'s connections with `reason` (`invalid`: badSignature, ...; `shed`:
    /// perAddress, global), all ports.
    public func count(_ outcome: Outcome, reason: String) -> Int {
        reasons.withLockedValue { reasons in
            reasons.reduce(0) { $0 + ($1.key.outcome == outcome && $1.key.reason == reason ? $1.value.value : 0) }
        }
    }

    /// Every port that has counted a connection.
    public var countedPorts: Set<Int> {
        counts.withLockedValue { Set($0.keys.map(\.port)) }
    }

    /// What `port` counted, as `key=value` pairs for one log line: every
    /// outcome (zeros too, so a reader sees the whole set), then the rejected
    /// headers and the shed connections by reason, as `invalid.REASON` and
    /// `shed.REASON` (only the reasons seen).
    public func summary(port: Int) -> [(key: String, count: Int)] {
        let outcomes = counts.withLockedValue { counts in
            Outcome.allCases.map { (key: $0.rawValue, count: counts[Key(port: port, outcome: $0)]?.value ?? 0) }
        }
        let byReason = reasons.withLockedValue { reasons in
            reasons.filter { $0.key.port == port }.map { (key: "\($0.key.outcome.rawValue).\($0.key.reason)", count: $0.value.value) }
        }
        return outcomes + byReason.sorted { $0.key < $1.key }
    }
}

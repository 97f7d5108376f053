import NetHostLogging

/// The host's own counters since the start, the ones no module keeps: what issue 14's
/// limits closed, refused or dropped. Each is kept as an atomic by the part that
/// counts it (so counting takes no lock on the connection path); this is where they
/// are read together, for the statistics line (`NetHostServer.logStatistics`, SIGUSR1)
/// and for a metrics exporter (`NetHostServer.counters`), which should read them here
/// rather than from their owners, so that both report the same set under the same names.
public struct ServerCounters: Sendable, Hashable {
    /// TLS handshakes closed at `ssl_handshake_timeout` (direct TLS, after a PROXY header, STARTTLS).
    public var tlsHandshakeTimeouts: Int
    /// TLS connections (and STARTTLS upgrades) closed before their handshake by
    /// `ssl_max_handshakes_per_second`.
    public var tlsHandshakesRefused: Int
    /// Connections closed because their send buffer would have taken every
    /// connection's together past `max_send_buffer_total`.
    public var sendBufferTotalShed: Int
    /// Log lines dropped by the log writer: its queue was full, or a sink failed to take them.
    public var logLinesDropped: Int
    /// Established connections closed at `max_connections` to make room, having been
    /// idle `shed_idle_after` or longer.
    public var idleShed: Int

    public init(
        tlsHandshakeTimeouts: Int = 0, tlsHandshakesRefused: Int = 0, sendBufferTotalShed: Int = 0, logLinesDropped: Int = 0,
        idleShed: Int = 0
    ) {
        self.idleShed = idleShed
        self.tlsHandshakeTimeouts = tlsHandshakeTimeouts
        self.tlsHandshakesRefused = tlsHandshakesRefused
        self.sendBufferTotalShed = sendBufferTotalShed
        self.logLinesDropped = logLinesDropped
    }

    /// The counts now, read from where they are kept.
    public init(handshakeLimits: TLSHandshakeLimits, sendBuffers: SendBufferBudget, log: LogWriter, limiter: ConnectionLimiter) {
        self.init(
            tlsHandshakeTimeouts: handshakeLimits.timedOut,
            tlsHandshakesRefused: handshakeLimits.refused,
            sendBufferTotalShed: sendBuffers.shedConnections,
            logLinesDropped: log.droppedLines,
            idleShed: limiter.shedIdleConnections
        )
    }

    /// The counts as `key=value` pairs for the statistics line, zeros too (a reader sees
    /// the whole set), named as net_proxy names its counts by reason (`shed.perAddress`):
    /// what was counted, then why.
    public var summary: [(key: String, count: Int)] {
        [
            (key: "log.dropped", count: logLinesDropped),
            (key: "shed.idle", count: idleShed),
            (key: "shed.sendBufferTotal", count: sendBufferTotalShed),
            (key: "tls.handshakeRefused", count: tlsHandshakesRefused),
            (key: "tls.handshakeTimeout", count: tlsHandshakeTimeouts),
        ]
    }
}

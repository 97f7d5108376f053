import NetHostConfig
import NIOCore

/// Per-connection limits and socket behaviour, from the `network_settings`
/// option as in Prosody. Every wait has a timeout and every buffer a bound.
public struct NetworkSettings: Sendable, Equatable {
    /// Seconds without incoming data before `onreadtimeout` (Prosody: 14 minutes).
    /// At most a year (`TimeoutSeconds.maximum`), as every timeout.
    public var readTimeout: Double = NetworkSettings.defaultReadTimeout
    /// Seconds a pending write may make no progress before the connection is closed.
    public var sendTimeout: Double = NetworkSettings.defaultSendTimeout
    /// Bytes of memory a connection may hold for sending (the storage of its queued
    /// buffers plus a per-buffer overhead, not only their payload); a connection past
    /// it is disconnected. Reading stops long before, at the high-water mark.
    public var maxSendBufferSize: Int = 32 * 1024 * 1024
    /// The same, for all connections of the process together; past it, the connection
    /// whose buffer would grow is disconnected (and counted, and logged).
    public var maxSendBufferTotal: Int = SendBufferBudget.defaultLimit
    /// What `maxSendBufferTotal` counts against: the process's, unless a test gives
    /// its connections one of their own.
    public var sendBufferBudget: SendBufferBudget = .shared
    /// The listen backlog. Larger than Prosody's 128: a burst of connections
    /// (a load balancer reconnecting, a flood) must not push good clients into
    /// SYN retransmits of a second or more. The kernel caps it at somaxconn.
    public var tcpBacklog: Int = 1024
    /// The largest single read, if the config sets one (`read_size`); nil: the
    /// listener's own default (`ConnectionListener.defaultReadSize`): 64 KiB for Swift
    /// services, Prosody's 8 KiB for Lua ones. Receive buffers start small and grow up to it.
    public var readSize: Int?
    /// `read_size` for Swift services when the config sets none. Larger than Prosody's
    /// 8 KiB: a 16 KiB message then takes one read and one service callback instead of
    /// several (half the CPU per message, measured).
    public static let defaultReadSize = 65536
    /// TCP_NODELAY on accepted connections: request-response services should not
    /// wait for Nagle's algorithm (nginx does the same).
    public var tcpNoDelay: Bool = true
    /// SO_KEEPALIVE on accepted connections.
    public var tcpKeepalive: Bool = false
    /// Open connections across all ports; one more is closed at accept. Kept
    /// below the open file limit (`fittingConnections(toDescriptors:)`).
    public var maxConnections: Int = 100_000
    /// Open connections from one address on the ports a service listens on itself
    /// (not the PROXY ports, where every connection comes from the load balancer
    /// and net_proxy has budgets of its own): one address cannot take every slot.
    public var maxConnectionsPerIP: Int = 1000

    /// Seconds a connection must have read nothing from its peer before, at
    /// `max_connections` with no connection waiting for a PROXY header, it may be
    /// closed to admit a new one (the idle longest goes first); 0: never, refuse the
    /// new one instead. A minute: an XMPP client is idle most of the time, but its
    /// keepalives come every few minutes at most, and one that has said nothing for a
    /// minute loses least by reconnecting; a busy client is never cut.
    public var shedIdleAfter: Double = 60

    /// `ssl_handshake_timeout` as Prosody's server_epoll reads it, from here (or its
    /// alias `handshake_timeout`); nil when not set. `TLSContexts` applies it, unless
    /// the global option `ssl_handshake_timeout` is set.
    public var tlsHandshakeTimeout: Double?

    /// Seconds an outgoing connection (`net.server.addclient`, `net.connect`) may take
    /// to connect to one address, TLS handshake not included (`ssl_handshake_timeout`
    /// bounds that); Prosody's server_epoll name and default.
    public var connectTimeout: Double = NetworkSettings.defaultConnectTimeout

    public static let defaultReadTimeout: Double = 840
    public static let defaultConnectTimeout: Double = 20
    public static let defaultSendTimeout: Double = 180

    public init() {}

    /// These settings with `max_connections` lowered, if need be, to what `limit`
    /// open files leave room for when `inUse` are open already
    /// (`DescriptorLimit.connectionCeiling`), and the value it had before when it was lowered.
    public func fittingConnections(toDescriptors limit: Int?, inUse: Int = 0) -> (settings: NetworkSettings, lowered: Int?) {
        guard let limit else { return (self, nil) }
        let ceiling = DescriptorLimit.connectionCeiling(for: limit, inUse: inUse)
        guard maxConnections > ceiling else { return (self, nil) }
        var fitted = self
        fitted.maxConnections = ceiling
        return (fitted, maxConnections)
    }

    /// `readTimeout` on the loop's clock. Reading the config refuses what no timeout can
    /// be; a value set from Swift is not checked there, so NaN or a negative number counts
    /// as the default here and infinity as the maximum, rather than trapping.
    var readTimeoutAmount: TimeAmount {
        (try? TimeoutSeconds.timeAmount(readTimeout, infinity: .clampsToMaximum)) ?? .seconds(Int64(Self.defaultReadTimeout))
    }

    /// `shedIdleAfter` on the loop's clock; zero (never) for 0 and for what is not a
    /// finite number of seconds (the config refuses those; a value set from Swift is not checked).
    public var shedIdleAfterAmount: TimeAmount {
        guard shedIdleAfter > 0, let amount = try? TimeoutSeconds.timeAmount(shedIdleAfter) else { return .zero }
        return amount
    }

    /// `connectTimeout` on the loop's clock, read as `readTimeoutAmount` is.
    public var connectTimeoutAmount: TimeAmount {
        (try? TimeoutSeconds.timeAmount(connectTimeout, infinity: .clampsToMaximum)) ?? .seconds(Int64(Self.defaultConnectTimeout))
    }

    /// `sendTimeout` on the loop's clock, read as `readTimeoutAmount` is.
    var sendTimeoutAmount: TimeAmount {
        (try? TimeoutSeconds.timeAmount(sendTimeout, infinity: .clampsToMaximum)) ?? .seconds(Int64(Self.defaultSendTimeout))
    }

    /// What was wrong with a `network_settings` entry.
    public struct Problem: Sendable, CustomStringConvertible {
        public let option: String
        public let reason: String
        public var description: String { "network_settings.\(option): \(reason)" }
    }

    /// Reads the `network_settings` table; unknown keys and wrong types are
    /// reported and the default kept, like Prosody's typed option look-ups.
    public init(from table: ConfigTable?, problems: inout [Problem]) {
        guard let table else { return }
        func seconds(_ key: String, _ target: inout Double) {
            guard let value = table[key] else { return }
            guard let number = value.numberValue else {
                problems.append(Problem(option: key, reason: "expected a positive number of seconds, got \(value.typeName)"))
                return
            }
            // A zero timeout would close every connection at once: these must be above 0.
            guard number > 0 || number.isNaN else {
                problems.append(Problem(option: key, reason: "expected a positive number of seconds, got \(number)"))
                return
            }
            do throws(InvalidTimeout) {
                _ = try TimeoutSeconds.timeAmount(number)  // refuses NaN and infinity
            } catch {
                problems.append(Problem(option: key, reason: error.description))
                return
            }
            target = min(number, TimeoutSeconds.maximum)
        }
        func count(_ key: String, minimum: Int, _ target: inout Int) {
            var value: Int? = target
            count(key, minimum: minimum, &value)
            if let value { target = value }
        }
        func count(_ key: String, minimum: Int, _ target: inout Int?) {
            guard let value = table[key] else { return }
            if let integer = value.integerValue, integer >= minimum {
                target = integer
            } else {
                problems.append(Problem(option: key, reason: "expected a whole number of at least \(minimum)"))
            }
        }
        func flag(_ key: String, _ target: inout Bool) {
            guard let value = table[key] else { return }
            if let boolean = value.booleanValue {
                target = boolean
            } else {
                problems.append(Problem(option: key, reason: "expected true or false, got \(value.typeName)"))
            }
        }
        seconds("read_timeout", &readTimeout)
        seconds("send_timeout", &sendTimeout)
        seconds("connect_timeout", &connectTimeout)
        func secondsIfSet(_ key: String) -> Double? {
            guard table[key] != nil else { return nil }
            var value = Double.nan
            seconds(key, &value)  // reported and left NaN when it cannot be a timeout
            return value.isNaN ? nil : value
        }
        let tlsHandshake = secondsIfSet("ssl_handshake_timeout"), alias = secondsIfSet("handshake_timeout")
        if let tlsHandshake, let alias, tlsHandshake != alias {
            problems.append(Problem(option: "handshake_timeout", reason: "an alias of ssl_handshake_timeout, which is set too "
                + "(\(tlsHandshake)); ssl_handshake_timeout is used"))
        }
        tlsHandshakeTimeout = tlsHandshake ?? alias
        // 0 turns idle shedding off, so unlike the timeouts 0 is allowed.
        if let value = table["shed_idle_after"] {
            if let number = value.numberValue, number >= 0, number.isFinite {
                shedIdleAfter = min(number, TimeoutSeconds.maximum)
            } else {
                let got = value.numberValue.map { "\($0)" } ?? value.typeName
                problems.append(Problem(
                    option: "shed_idle_after", reason: "expected 0 (never shed) or a positive, finite number of seconds, got \(got)"
                ))
            }
        }
        count("max_send_buffer_size", minimum: 1, &maxSendBufferSize)
        count("max_send_buffer_total", minimum: 1, &maxSendBufferTotal)
        count("tcp_backlog", minimum: 1, &tcpBacklog)
        count("read_size", minimum: 64, &readSize)
        count("max_connections", minimum: 1, &maxConnections)
        count("max_connections_per_ip", minimum: 1, &maxConnectionsPerIP)
        flag("tcp_nodelay", &tcpNoDelay)
        flag("tcp_keepalive", &tcpKeepalive)
        let known: Set<String> = [
            "read_timeout", "send_timeout", "max_send_buffer_size", "max_send_buffer_total", "tcp_backlog", "read_size",
            "tcp_nodelay", "tcp_keepalive", "max_connections", "max_connections_per_ip", "shed_idle_after",
            "ssl_handshake_timeout", "handshake_timeout", "connect_timeout",
            // net_proxy's, read by ProxyModule.
            "max_pending_headers_per_ip",
            // Prosody's server_epoll settings that NetHost's event loop has no use for.
            "max_wait", "min_wait", "fatal_errors",
            "opportunistic_writes", "keepalive", "nodelay", "edge_triggered", "ssl_timeout",
        ]
        for case .string(let key) in table.map.keys where !known.contains(key) {
            problems.append(Problem(option: key, reason: "unknown setting, ignored"))
        }
    }
}

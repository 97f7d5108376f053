import Logging
import NetHost

/// What every connection of the module's ports shares: the options, the
/// counters, the flood-proof log and the per-address pending-header slots.
struct ProxyRuntime: Sendable {
    let configuration: ProxyConfiguration
    let statistics: ProxyStatistics
    let events: RepeatedEventLog
    let pending = PendingHeaders()
}

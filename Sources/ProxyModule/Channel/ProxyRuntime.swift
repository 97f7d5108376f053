import Logging
import NetHost

/// What every connection of the module's ports shares: the options, the
/// counters, the flood-proof log and the connections waiting for their header.
struct ProxyRuntime: Sendable {
    /// Replaced by a reload; each connection reads it once, when accepted.
    let liveConfiguration: LiveValue<ProxyConfiguration>
    let statistics: ProxyStatistics
    let events: RepeatedEventLog
    let pending: PendingHeaders

    init(
        liveConfiguration: LiveValue<ProxyConfiguration>, statistics: ProxyStatistics, events: RepeatedEventLog,
        pending: PendingHeaders = PendingHeaders()
    ) {
        self.liveConfiguration = liveConfiguration
        self.statistics = statistics
        self.events = events
        self.pending = pending
    }

    var configuration: ProxyConfiguration { liveConfiguration.value }
}

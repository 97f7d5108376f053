import Logging
import NIOConcurrencyHelpers

/// Logs the first of a run of identical events from one peer and counts the
/// rest, so that a flood (bad headers, untrusted senders, health checks that
/// connect and close) becomes one line now and one summary per interval, not
/// a line per connection.
public final class RepeatedEventLog: Sendable {
    private struct Key: Hashable {
        let message: String
        let peer: String
    }

    private struct Entry {
        var suppressed: Int
        var level: Logger.Level
    }

    private let logger: Logger
    /// The metadata key that names where the events come from (`peer` by default).
    private let sourceLabel: String
    /// Keys whose first line is out and whose repeats are being counted.
    private let entries = NIOLockedValueBox<[Key: Entry]>([:])
    /// Beyond this many distinct keys, new ones are folded into one overflow count.
    private let maximumKeys: Int

    public init(logger: Logger, maximumKeys: Int = 10_000, sourceLabel: String = "peer") {
        self.logger = logger
        self.maximumKeys = maximumKeys
        self.sourceLabel = sourceLabel
    }

    /// Records one event; logs it unless the same event from the same peer was
    /// logged since the last `flush()`. `peer` is what makes events "the same"
    /// (an address without its port); `metadata["peer"]` may name it more exactly.
    /// (With another `sourceLabel`, read that label for "peer".)
    public func record(_ message: String, from peer: String, level: Logger.Level, metadata: Logger.Metadata? = nil) {
        let key = Key(message: message, peer: peer)
        let first: Bool = entries.withLockedValue { entries in
            if entries[key] != nil {
                entries[key]?.suppressed += 1
                return false
            }
            if entries.count >= maximumKeys {
                entries[Key(message: "(other events)", peer: "many peers"), default: Entry(suppressed: 0, level: level)].suppressed += 1
                return false
            }
            entries[key] = Entry(suppressed: 0, level: level)
            return true
        }
        if first {
            var metadata = metadata ?? [:]
            metadata[sourceLabel] = metadata[sourceLabel] ?? "\(peer)"
            logger.log(level: level, "\(message)", metadata: metadata)
        }
    }

    /// Logs one summary line per event that repeated, and starts counting afresh.
    public func flush() {
        let repeated = entries.withLockedValue { entries -> [(Key, Entry)] in
            let repeated = entries.filter { $0.value.suppressed > 0 }
            entries.removeAll(keepingCapacity: true)
            return Array(repeated)
        }
        for (key, entry) in repeated.sorted(by: { $0.1.suppressed > $1.1.suppressed }) {
            logger.log(level: entry.level, "\(key.message) (repeated \(entry.suppressed) more times)", metadata: [sourceLabel: "\(key.peer)"])
        }
    }
}

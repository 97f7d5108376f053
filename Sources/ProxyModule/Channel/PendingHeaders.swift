import NIOConcurrencyHelpers

/// How many connections each address has open whose PROXY header has not
/// arrived yet, so that one sender cannot hold every slot with silent or
/// dripping connections (`max_pending_headers_per_ip`).
final class PendingHeaders: Sendable {
    private let counts = NIOLockedValueBox<[String: Int]>([:])

    /// Takes a slot for `address`; false if it already holds `limit`.
    func enter(_ address: String, limit: Int) -> Bool {
        counts.withLockedValue { counts in
            let current = counts[address, default: 0]
            guard current < limit else { return false }
            counts[address] = current + 1
            return true
        }
    }

    func leave(_ address: String) {
        counts.withLockedValue { counts in
            guard let current = counts[address] else { return }
            counts[address] = current > 1 ? current - 1 : nil
        }
    }

    /// Addresses with a pending header right now (for tests and status).
    var addressCount: Int { counts.withLockedValue { $0.count } }
}

import NIOConcurrencyHelpers

/// The one store every Lua state of a server can reach (`require "nethost.shared"`),
/// like OpenResty's `ngx.shared.DICT`: named dictionaries of strings, numbers and
/// booleans, for counters and flags that the per-loop Lua states
/// (`lua_per_loop_services`) share. Everything else stays in its own state.
///
/// Its lock is the only one between the states, and it is taken only when a
/// module calls the store; values are copied in and out, so no Lua value crosses
/// states. The store is bounded (`lua_shared_dict_max_bytes`): a write that would
/// pass the bound is refused with `Failure.full`, and nothing is evicted.
public final class SharedDicts: Sendable {
    /// A value the store holds: what Lua gave, with integers kept apart from floats.
    public enum Value: Sendable, Equatable {
        /// Lua's strings are bytes: kept as they are, binary ones too.
        case string([UInt8])
        case integer(Int)
        case number(Double)
        case boolean(Bool)

        /// What the bound counts for the value: a string's bytes, 8 for anything else.
        var size: Int {
            if case .string(let bytes) = self { return bytes.count }
            return 8
        }
    }

    /// Why a write was refused.
    public enum Failure: Error, Equatable, CustomStringConvertible {
        /// `add` of a key that is there.
        case exists
        /// `incr` of a key that is not there, without an initial value.
        case notFound
        /// `incr` of a value that is not a number.
        case notANumber
        /// `incr` past the range of Lua's integers.
        case overflow
        /// The write would pass `lua_shared_dict_max_bytes`.
        case full(limit: Int)

        public var description: String {
            switch self {
            case .exists: "exists"
            case .notFound: "not found"
            case .notANumber: "not a number"
            case .overflow: "integer overflow"
            case .full(let limit):
                "no memory: the shared dicts are full (lua_shared_dict_max_bytes = \(limit); keys and values count)"
            }
        }
    }

    private struct Storage {
        var dicts: [String: [String: Value]] = [:]
        var bytes = 0
    }

    /// Bytes of keys and values (8 per number or boolean) all dicts together may hold.
    public let maximumBytes: Int
    public static let defaultMaximumBytes = 1 << 20
    /// A pthread mutex (NIO's lock) rather than `Synchronization.Mutex`, whose futexes
    /// ThreadSanitizer cannot see on Linux: the sanitizer runs check this store too.
    private let storage = NIOLockedValueBox(Storage())

    public init(maximumBytes: Int = SharedDicts.defaultMaximumBytes) {
        self.maximumBytes = maximumBytes
    }

    public func get(_ dict: String, _ key: String) -> Value? {
        storage.withLockedValue { $0.dicts[dict]?[key] }
    }

    /// Stores `value` (nil deletes the key).
    public func set(_ dict: String, _ key: String, _ value: Value?) throws(Failure) {
        try write(dict, key) { old throws(Failure) in value }
    }

    /// Stores `value` only if the key is not there.
    public func add(_ dict: String, _ key: String, _ value: Value) throws(Failure) {
        try write(dict, key) { old throws(Failure) in
            if old != nil { throw .exists }
            return value
        }
    }

    public func delete(_ dict: String, _ key: String) {
        try? write(dict, key) { _ throws(Failure) in nil }
    }

    /// Adds `by` to the number at `key` atomically and returns the sum; a missing
    /// key starts at `initial`, or is `Failure.notFound` without one. Integers
    /// stay integers; a float on either side makes a float.
    @discardableResult
    public func increment(_ dict: String, _ key: String, by: Value, initial: Value?) throws(Failure) -> Value {
        var result = by
        try write(dict, key) { old throws(Failure) in
            guard let start = old ?? initial else { throw .notFound }
            switch (start, by) {
            case (.integer(let a), .integer(let b)):
                let (sum, overflow) = a.addingReportingOverflow(b)
                if overflow { throw .overflow }
                result = .integer(sum)
            case (.integer(let a), .number(let b)): result = .number(Double(a) + b)
            case (.number(let a), .integer(let b)): result = .number(a + Double(b))
            case (.number(let a), .number(let b)): result = .number(a + b)
            default: throw .notANumber
            }
            return result
        }
        return result
    }

    /// The keys of a dict (at most `limit`), in no particular order.
    public func keys(_ dict: String, limit: Int = 1024) -> [String] {
        storage.withLockedValue { Array(($0.dicts[dict] ?? [:]).keys.prefix(limit)) }
    }

    /// Bytes held now, as the bound counts them.
    public var bytesInUse: Int { storage.withLockedValue { $0.bytes } }

    /// Replaces the value at `key` with what `change` makes of the old one, under
    /// the lock, if the store stays within its bound.
    private func write(_ dict: String, _ key: String, _ change: (Value?) throws(Failure) -> Value?) throws(Failure) {
        let maximumBytes = self.maximumBytes
        try storage.withLockedValue { (storage: inout Storage) -> Result<Void, Failure> in
            let old = storage.dicts[dict]?[key]
            let new: Value?
            do throws(Failure) {
                new = try change(old)
            } catch {
                return .failure(error)
            }
            let oldSize = old.map { key.utf8.count + $0.size } ?? 0
            let newSize = new.map { key.utf8.count + $0.size } ?? 0
            let bytes = storage.bytes - oldSize + newSize
            if newSize > oldSize, bytes > maximumBytes { return .failure(.full(limit: maximumBytes)) }
            storage.bytes = bytes
            storage.dicts[dict, default: [:]][key] = new
            if new == nil, storage.dicts[dict]?.isEmpty == true { storage.dicts[dict] = nil }
            return .success(())
        }.get()
    }
}

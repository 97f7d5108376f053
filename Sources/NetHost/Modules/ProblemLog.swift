import NIOConcurrencyHelpers

/// Problems found while starting (a module that failed to load, a mapping to a
/// service that does not exist...), for `nethost check` to print.
public final class ProblemLog: Sendable {
    private let entries = NIOLockedValueBox<[String]>([])

    public init() {}

    public func add(_ problem: String) {
        entries.withLockedValue { $0.append(problem) }
    }

    public var all: [String] { entries.withLockedValue { $0 } }
}

import NIOCore

/// Turns a number of seconds that came from outside (a config option, a Lua argument, a
/// Swift caller) into the loop's `TimeAmount`. Every such conversion goes through here:
/// `TimeAmount.nanoseconds(Int64(seconds * 1e9))` traps on NaN, on infinity and past
/// about 292 years, and one trap ends every connection of the process.
public enum TimeoutSeconds {
    /// The longest timeout NetHost arms, 365 days; a longer one is clamped to it. For a
    /// connection a year is as good as never, and it keeps `now + timeout` far from the
    /// range where `NIODeadline` saturates.
    public static let maximum: Double = 365 * 24 * 60 * 60
    public static let maximumAmount = TimeAmount.seconds(Int64(maximum))

    /// What infinity means where a timeout is read.
    public enum Infinity: Sendable {
        /// A mistake (a config option: write the number you mean).
        case invalid
        /// "Never", as Prosody treats `math.huge`: clamped to ``maximum`` like any large number.
        case clampsToMaximum
    }

    /// `seconds` as a `TimeAmount`, truncated to whole nanoseconds and clamped to ``maximum``.
    /// Zero is allowed (the deadline is now). Throws for NaN, for a negative number, and for
    /// infinity unless `infinity` says it stands for the maximum.
    public static func timeAmount(_ seconds: Double, infinity: Infinity = .invalid) throws(InvalidTimeout) -> TimeAmount {
        if seconds.isNaN { throw InvalidTimeout(.notANumber, seconds) }
        if seconds < 0 { throw InvalidTimeout(.negative, seconds) }
        if seconds.isInfinite, infinity == .invalid { throw InvalidTimeout(.infinite, seconds) }
        guard seconds < maximum else { return maximumAmount }
        return .nanoseconds(Int64(seconds * 1_000_000_000))
    }
}

/// A number of seconds that cannot be a timeout; its description says why, to follow
/// the name of the option or function that was given it.
public struct InvalidTimeout: Error, CustomStringConvertible, Sendable {
    fileprivate enum Problem: Sendable {
        case notANumber
        case negative
        case infinite
    }

    private let problem: Problem
    /// The number given.
    public let seconds: Double

    fileprivate init(_ problem: Problem, _ seconds: Double) {
        self.problem = problem
        self.seconds = seconds
    }

    public var description: String {
        switch problem {
        case .notANumber: "expected a number of seconds, got NaN (not a number)"
        case .negative: "expected a number of seconds of at least 0, got \(seconds)"
        case .infinite: "expected a finite number of seconds, got infinity (anything above \(Int(TimeoutSeconds.maximum)) s, a year, counts as a year)"
        }
    }
}

import NIOCore
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging

/// The one conversion from a number of seconds to the loop's `TimeAmount`.
@Suite("Timeout seconds")
struct TimeoutSecondsTests {
    @Test("ordinary values become whole nanoseconds; zero is allowed", arguments: [
        (0.0, Int64(0)), (0.2, 200_000_000), (1, 1_000_000_000), (840, 840_000_000_000), (1e-12, 0),
    ])
    func ordinary(seconds: Double, nanoseconds: Int64) throws {
        #expect(try TimeoutSeconds.timeAmount(seconds) == .nanoseconds(nanoseconds))
    }

    @Test("anything from a year up is a year, whatever Int64 could hold", arguments: [
        TimeoutSeconds.maximum, TimeoutSeconds.maximum + 1, 9.3e9, 1e300, .greatestFiniteMagnitude,
    ])
    func clampsLarge(seconds: Double) throws {
        #expect(try TimeoutSeconds.timeAmount(seconds) == TimeoutSeconds.maximumAmount)
        #expect(TimeoutSeconds.maximumAmount == .hours(365 * 24))
    }

    @Test("infinity is refused, or a year where it is allowed to mean never")
    func infinity() throws {
        #expect(throws: InvalidTimeout.self) { try TimeoutSeconds.timeAmount(.infinity) }
        #expect(try TimeoutSeconds.timeAmount(.infinity, infinity: .clampsToMaximum) == TimeoutSeconds.maximumAmount)
    }

    @Test("NaN and negative numbers are refused whatever infinity means, saying why", arguments: [
        (Double.nan, "expected a number of seconds, got NaN (not a number)"),
        (-.infinity, "expected a number of seconds of at least 0, got -inf"),
        (-0.5, "expected a number of seconds of at least 0, got -0.5"),
    ])
    func refused(seconds: Double, description: String) {
        for infinity in [TimeoutSeconds.Infinity.invalid, .clampsToMaximum] {
            do {
                let amount = try TimeoutSeconds.timeAmount(seconds, infinity: infinity)
                Issue.record("\(seconds) became \(amount)")
            } catch {
                #expect(error.description == description)
            }
        }
    }
}

import NetHostConfig
import NIOCore

/// How a graceful stop drains: the listeners close at once, the open connections
/// are told (`onstatus(conn, "shutdown")`) and get this long to end by themselves.
public enum ShutdownOptions {
    public static let defaultTimeout = 30.0

    public static let shutdownTimeout = OptionDeclaration(
        "shutdown_timeout", .seconds, default: "\(Int(defaultTimeout))", scope: .global,
        help: "seconds open connections get to end by themselves at a graceful stop (SIGTERM), after which they are closed; 0 closes them at once",
        reload: .applied
    )

    public static let group = OptionRegistry.Group("shutdown", options: [shutdownTimeout])

    /// The option as a time, with checks: a value that is not a number of seconds
    /// from 0 to a day is a problem, and the default applies.
    static func timeout(in options: any OptionSource, problems: inout [String]) -> TimeAmount {
        guard let value = options.value(shutdownTimeout) else { return .seconds(Int64(defaultTimeout)) }
        guard let seconds = value.numberValue, seconds.isFinite, (0 ... 86_400).contains(seconds) else {
            problems.append("shutdown_timeout must be a number of seconds from 0 to 86400, not \(value); using \(Int(defaultTimeout))")
            return .seconds(Int64(defaultTimeout))
        }
        return .nanoseconds(Int64(seconds * 1_000_000_000))
    }
}

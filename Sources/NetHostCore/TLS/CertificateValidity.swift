/// Where a moment falls in a certificate's validity period, with a margin before
/// the end: the time an operator needs to renew before clients start refusing it.
/// Pure (seconds since 1970 in, a case out), so tests pick "now" instead of
/// waiting for the wall clock.
public enum CertificateValidity: Sendable, Hashable {
    /// Before `notValidBefore`: clients that check refuse it.
    case notYetValid(from: Int)
    /// Past `notValidAfter`: clients that check refuse it.
    case expired(on: Int)
    /// Valid now, but it ends within the margin.
    case expiresSoon(on: Int, secondsLeft: Int)
    case valid

    /// Fourteen days: about what certbot leaves when renewal has failed for two
    /// weeks (it renews 30 days ahead), and long enough to act on a warning.
    public static let renewalMargin = 14 * 86_400

    public init(notValidBefore: Int, notValidAfter: Int, now: Int, margin: Int = Self.renewalMargin) {
        if now > notValidAfter {
            self = .expired(on: notValidAfter)
        } else if now < notValidBefore {
            self = .notYetValid(from: notValidBefore)
        } else if notValidAfter - now < margin {
            self = .expiresSoon(on: notValidAfter, secondsLeft: notValidAfter - now)
        } else {
            self = .valid
        }
    }

    /// "within a day" below a day, else to the nearest day: "in 1 day", "in 3 days"
    /// (a certificate made with `-days 3` a moment ago expires "in 3 days").
    public static func timeLeft(_ seconds: Int) -> String {
        guard seconds >= 86_400 else { return "within a day" }
        let days = (seconds + 43_200) / 86_400
        return days == 1 ? "in 1 day" : "in \(days) days"
    }
}

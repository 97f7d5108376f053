/// A warning about a config that still loads (an option set twice, a global
/// option placed under a host), or a note about something Prosody allows and
/// that is worth knowing (a host section opened again).
public struct ConfigDiagnostic: Sendable, Hashable, CustomStringConvertible {
    public enum Severity: Sendable, Hashable {
        /// Probably a mistake: `nethost check` counts it as a problem.
        case warning
        /// Allowed, as Prosody allows it: `nethost check` prints it as a note.
        case note
    }

    public var location: ConfigLocation
    public var message: String
    public var severity: Severity

    public init(location: ConfigLocation, message: String, severity: Severity = .warning) {
        self.location = location
        self.message = message
        self.severity = severity
    }

    public var file: String { location.file }
    public var line: Int { location.line }

    /// "file:line: message".
    public var description: String { "\(location): \(message)" }
}

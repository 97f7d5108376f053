/// A warning about a config that still loads: an option set twice, a global
/// option placed under a host, a host defined twice.
public struct ConfigDiagnostic: Sendable, Hashable, CustomStringConvertible {
    public var location: ConfigLocation
    public var message: String

    public init(location: ConfigLocation, message: String) {
        self.location = location
        self.message = message
    }

    public var file: String { location.file }
    public var line: Int { location.line }

    /// "file:line: message".
    public var description: String { "\(location): \(message)" }
}

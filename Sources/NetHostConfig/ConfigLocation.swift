/// Where something in the config was written: the file (as the user named it,
/// or as an `Include` resolved it) and the line.
public struct ConfigLocation: Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var line: Int

    public init(file: String, line: Int) {
        self.file = file
        self.line = line
    }

    /// "file:line", the form editors and compilers use.
    public var description: String { "\(file):\(line)" }
}

/// One option's value and where it was set.
public struct ConfigOption: Sendable, Hashable {
    public var value: ConfigValue
    public var location: ConfigLocation

    public init(value: ConfigValue, location: ConfigLocation) {
        self.value = value
        self.location = location
    }
}

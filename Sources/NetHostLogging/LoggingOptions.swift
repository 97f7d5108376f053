import NetHostConfig

/// The option `LoggingConfiguration` is read from.
public enum LoggingOptions {
    public static let log = OptionDeclaration(
        "log", .shaped(#"string "*console", "*syslog" or a file name; { level = sink }; or a list of sink tables"#),
        default: "the console at info", scope: .global,
        help: "where log records go, and from which level",
        reload: .applied
    )

    public static let group = OptionRegistry.Group("logging", options: [log])
}

import NetHost

/// The options the `nethost` command itself reads; the library's are declared
/// beside the code that reads them (see `OptionRegistry`).
enum ProcessOptions {
    static let pidfile = OptionDeclaration(
        "pidfile", .string, scope: .global,
        help: "a file NetHost writes its process id to and keeps locked while it runs (relative to the config); a second start with it is refused"
    )

    static let group = OptionRegistry.Group("nethost", options: [pidfile])
}

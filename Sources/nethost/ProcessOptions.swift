import NetHost

/// The options the `nethost` command itself reads; the library's are declared
/// beside the code that reads them (see `OptionRegistry`).
enum ProcessOptions {
    static let pidfile = OptionDeclaration(
        "pidfile", .string, scope: .global,
        help: "a file NetHost writes its process id to and keeps locked while it runs (relative to the config); a second start with it is refused",
        reload: .restart(reason: "the pidfile is written and locked at start")
    )

    static let controlSocket = OptionDeclaration(
        "control_socket", .string, scope: .global,
        help: "the Unix socket (mode 0600, relative to the config) where `nethost run --takeover` asks this NetHost for its listening sockets; "
            + "by default beside the pidfile (nethost.pid: nethost.sock), else $RUNTIME_DIRECTORY/nethost.sock, else none",
        reload: .restart(reason: "the socket is opened at start")
    )

    static let group = OptionRegistry.Group("nethost", options: [pidfile, controlSocket])
}

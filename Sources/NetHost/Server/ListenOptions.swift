import NetHostConfig

/// The options `ListenPlan` reads: where each service listens. Ports are opened
/// once for the whole server, so all of these belong in the global section.
public enum ListenOptions {
    public static let interfaces = OptionDeclaration(
        "interfaces", .stringList, default: #"{ "*", "::" }"#, scope: .global,
        help: "addresses every service listens on, unless its NAME_interfaces says otherwise",
        reload: .applied
    )
    public static let localInterfaces = OptionDeclaration(
        "local_interfaces", .stringList, default: #"{ "127.0.0.1", "::1" }"#, scope: .global,
        help: "addresses a private service (provides with private = true) listens on, whatever interfaces says",
        reload: .applied
    )
    public static let ports = ServiceOptionDeclaration(
        suffix: "_ports", .portList, default: "the service's default_port(s)", scope: .global,
        help: "the ports a service listens on; { } for none",
        reload: .applied
    )
    public static let serviceInterfaces = ServiceOptionDeclaration(
        suffix: "_interfaces", .stringList, default: "local_interfaces for a private service, else interfaces",
        scope: .global,
        help: "the addresses a service listens on",
        reload: .applied
    )

    public static let group = OptionRegistry.Group(
        "ports", options: [interfaces, localInterfaces], serviceOptions: [ports, serviceInterfaces]
    )
}

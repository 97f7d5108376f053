// nethost: the executable. The command line (run, check, drain), signals, the PID
// file, and the server's lifecycle as a Service.
import ArgumentParser
import NetHostCore

@main
struct NetHostCommand: AsyncParsableCommand {
    static let version = NetHostVersion.current

    static let configuration = CommandConfiguration(
        commandName: "nethost",
        abstract: "A network server for Prosody-style modules, with a complete PROXY protocol receiver.",
        version: version,
        subcommands: [RunCommand.self, CheckCommand.self],
        defaultSubcommand: RunCommand.self
    )
}

/// Options every subcommand takes.
struct CommonOptions: ParsableArguments {
    @Option(name: [.short, .long], help: "The config file (Prosody's format).")
    var config: String = "prosody.cfg.lua"

    @Option(name: .long, help: "Lowest level logged to the console: debug, info, warn or error (overrides the config).")
    var logLevel: String?
}

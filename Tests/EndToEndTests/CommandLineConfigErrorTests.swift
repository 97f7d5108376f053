import Foundation
import SocketTestSupport
import Testing

// A config with an error stops NetHost before anything else: one message on stderr
// naming the file and the line, a non-zero exit status, no port opened (README,
// "Configuration"). Each case is also run fixed (the bad line replaced by a comment,
// so the line numbers stay put) to prove that the same config does open its port.

/// A config whose file `file` has an error on line `line`.
struct CommandLineBrokenConfig: Sendable, CustomTestStringConvertible {
    let name: String
    /// Files relative to the workspace, as lines; `PORT` stands for the echo port.
    /// The main file is `prosody.cfg.lua`.
    let files: [String: [String]]
    /// The file and the (1-based) line with the error.
    let file: String
    let line: Int
    /// A part of the message Lua gives for it.
    let message: String

    var testDescription: String { self.name }

    static let mainHeader = [
        "-- NetHost config for a test",
        #"interfaces = { "127.0.0.1", "::1" }"#,
        #"modules_enabled = { "demo_echo" }"#,
        "demo_echo_ports = { PORT }",
    ]

    static let all: [CommandLineBrokenConfig] = [
        CommandLineBrokenConfig(
            name: "syntax error in the main file",
            files: ["prosody.cfg.lua": mainHeader + [
                "network_settings = { read_size = 8192,, }",  // line 5
                #"log = "*console""#,
                #"VirtualHost "localhost""#,
            ]],
            file: "prosody.cfg.lua", line: 5, message: "unexpected symbol near ','"
        ),
        CommandLineBrokenConfig(
            name: "runtime error in the main file",
            files: ["prosody.cfg.lua": mainHeader + [
                #"log = "*console""#,
                #"Includ "conf.d/*.cfg.lua""#,  // line 6: a typo, calls nil
                #"VirtualHost "localhost""#,
            ]],
            file: "prosody.cfg.lua", line: 6, message: "attempt to call a nil value (global 'Includ')"
        ),
        CommandLineBrokenConfig(
            name: "syntax error in an included file",
            files: [
                "prosody.cfg.lua": mainHeader + [#"Include "conf.d/*.cfg.lua""#],
                "conf.d/10-fine.cfg.lua": ["-- nothing wrong here", "echo_ok = true"],
                "conf.d/20-limits.cfg.lua": [
                    "-- limits",
                    "network_settings = {",
                    "\tread_timeout 60;",  // line 3
                    "}",
                ],
            ],
            file: "conf.d/20-limits.cfg.lua", line: 3, message: "near '60'"
        ),
        CommandLineBrokenConfig(
            name: "runtime error in an included file",
            files: [
                "prosody.cfg.lua": mainHeader + [#"Include "conf.d/*.cfg.lua""#, "-- end"],
                "conf.d/10-fine.cfg.lua": ["-- nothing wrong here", "echo_ok = true"],
                "conf.d/20-limits.cfg.lua": [
                    "-- limits",
                    "network_settings = {",
                    "\tread_timeout = 60;",
                    "}",
                    "local size = nil",
                    "max_size = size * 2",  // line 6
                ],
            ],
            file: "conf.d/20-limits.cfg.lua", line: 6, message: "attempt to perform arithmetic on a nil value (local 'size')"
        ),
    ]

    /// Writes the files with `PORT` replaced; with `fixed`, the bad line becomes a comment.
    func write(to workspace: CommandLineWorkspace, port: Int, fixed: Bool) throws {
        for (name, lines) in self.files {
            var lines = lines
            if fixed && name == self.file { lines[self.line - 1] = "-- (the bad line was here)" }
            let text = lines.joined(separator: "\n").replacingOccurrences(of: "PORT", with: "\(port)") + "\n"
            try workspace.write(text, to: name)
        }
    }
}

@Suite("CommandLine: config errors stop start-up")
struct CommandLineConfigErrorTests {
    @Test(arguments: CommandLineBrokenConfig.all)
    func oneMessageNamingFileAndLineNonZeroExitNoPort(_ broken: CommandLineBrokenConfig) async throws {
        let workspace = try CommandLineWorkspace(prefix: "broken")
        let port = try FreePort.allocate()
        try broken.write(to: workspace, port: port, fixed: false)
        let config = workspace.path("prosody.cfg.lua")
        let expectedPlace = "\(workspace.path(broken.file)):\(broken.line): "

        for arguments in [["--config", config], ["check", "--config", config]] {
            let result = try await workspace.run(arguments, watching: CommandLineWorkspace.onLoopbacks(port))
            let what = "nethost \(arguments.joined(separator: " "))"
            guard case .exited(let status) = result.termination else {
                Issue.record("\(what) did not exit normally: \(result.output)")
                continue
            }
            #expect(status != 0, "\(what): \(result.output)")
            #expect(result.errorLines.count == 1, "\(what): not exactly one message on stderr: \(result.output)")
            let message = result.errorLines.first ?? ""
            #expect(message.contains(expectedPlace), "\(what): the message does not name \(expectedPlace): \(result.output)")
            #expect(message.contains(broken.message), "\(what): \(result.output)")
            if broken.file != "prosody.cfg.lua" {
                #expect(!message.contains("prosody.cfg.lua:"), "\(what): names the including file: \(message)")
            }
            if arguments.first != "check" {
                #expect(result.standardOutput.isEmpty, "\(what): \(result.output)")
            }
            // Watched while it ran, counting only nethost's own sockets: once it has
            // exited, another test's server may take the same port number.
            #expect(result.listenedOn.isEmpty, "\(what) listened on \(result.listenedOn)")
        }

        // The same config without its bad line opens the port: the check above means something.
        try broken.write(to: workspace, port: port, fixed: true)
        let nethost = try await workspace.startListening(["--config", config], on: CommandLineWorkspace.onLoopbacks(port))
        #expect(nethost.stop() == .exited(0), "\(nethost.output)")
    }
}

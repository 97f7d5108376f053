import Foundation
import SocketTestSupport
import Testing

// The documentation cannot rot: the option reference is what the code declares, the
// changelog's latest version is what `nethost --version` prints, and every Lua and
// config example of README.md and docs/*.md runs.
//
// Examples are found by their fence's info string:
//   ```lua config         a whole config: `nethost check --config` on it must exit 0
//   ```lua module NAME    a module, saved as plugins/mod_NAME.lua: a config enabling it
//                         must pass `nethost check` (so it compiles and loads); the
//                         page's config examples see it too (plugin_paths = { "plugins" })
//   ```haproxy            HAProxy configuration: `haproxy -c` must accept it (a snippet
//                         without a frontend too)
//   ```nginx              an nginx `stream { }` block: `nginx -t` must accept it
//   ```lua (nothing else) an error: every Lua block says which it is
// Other languages (sh, swift, text, yaml, plain ```) are not run.

@Suite("The documentation")
struct DocumentationTests {
    static let root = CommandLineWorkspace.packageRoot

    /// docs/configuration.md is `make docs`'s output; a new or changed option must reach it.
    @Test
    func configurationReferenceIsGeneratedFromTheRegistry() async throws {
        let workspace = try CommandLineWorkspace(prefix: "docs-options")
        let result = try await workspace.run(["check", "--options", "--format", "markdown"])
        #expect(result.termination == .exited(0), "\(result.output)")
        let committed = try String(contentsOfFile: Self.root + "/docs/configuration.md", encoding: .utf8)
        if committed != result.standardOutput {
            let ours = committed.split(separator: "\n", omittingEmptySubsequences: false)
            let generated = result.standardOutput.split(separator: "\n", omittingEmptySubsequences: false)
            let first = zip(ours, generated).enumerated().first { $0.element.0 != $0.element.1 }?.offset
                ?? min(ours.count, generated.count)
            Issue.record("""
                docs/configuration.md is out of date with the option registry: run `make docs` and commit it.
                First difference at docs/configuration.md:\(first + 1):
                  committed: \(first < ours.count ? String(ours[first]) : "(end of file)")
                  generated: \(first < generated.count ? String(generated[first]) : "(end of file)")
                """)
        }
    }

    /// Every option says what a reload does with it, and the reload section of
    /// install-and-operate.md names each option that needs a restart.
    @Test
    func reloadSectionNamesEveryOptionThatNeedsARestart() async throws {
        let workspace = try CommandLineWorkspace(prefix: "docs-reload")
        let markdown = try await workspace.run(["check", "--options", "--format", "markdown"]).standardOutput
        #expect(!markdown.contains("**Reload:** not stated"), "an option does not say what a reload does with it")
        let lines = markdown.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var restart: [String] = []
        for (index, line) in lines.enumerated() where line.hasPrefix("### ") && index + 2 < lines.count {
            guard lines[index + 2].contains("**Reload:** needs a restart") else { continue }
            restart += line.dropFirst(4).split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        }
        #expect(restart.count >= 6, "\(restart)")
        let page = try String(contentsOfFile: Self.root + "/docs/install-and-operate.md", encoding: .utf8)
        let section = page.components(separatedBy: "## Reload (SIGHUP)").dropFirst().first?
            .components(separatedBy: "\n## ").first ?? ""
        for name in restart {
            #expect(section.contains(name), "docs/install-and-operate.md's reload section does not name \(name), which needs a restart")
        }
    }

    /// The text form and the Markdown form list the same option names.
    @Test
    func markdownListsEveryOptionOfTheTextListing() async throws {
        let workspace = try CommandLineWorkspace(prefix: "docs-options-text")
        let text = try await workspace.run(["check", "--options"]).standardOutput
        let markdown = try await workspace.run(["check", "--options", "--format", "markdown"]).standardOutput
        let textNames = text.split(separator: "\n").filter { $0.hasPrefix("  ") && !$0.hasPrefix("    ") }
            .flatMap { $0.split(separator: ":")[0].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
        let markdownNames = markdown.split(separator: "\n").filter { $0.hasPrefix("### ") }
            .flatMap { $0.dropFirst(4).split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).trimmingCharacters(in: ["`"]) } }
        #expect(!textNames.isEmpty)
        #expect(textNames == markdownNames)
    }

    /// `nethost --version` is the newest version CHANGELOG.md has released.
    @Test
    func versionMatchesTheChangelog() async throws {
        let changelog = try String(contentsOfFile: Self.root + "/CHANGELOG.md", encoding: .utf8)
        let released = changelog.split(separator: "\n").compactMap { line -> String? in
            guard let match = line.wholeMatch(of: /## \[(\d+\.\d+\.\d+[^\]]*)\] - \d{4}-\d{2}-\d{2}/) else { return nil }
            return String(match.1)
        }
        let latest = try #require(released.first, "CHANGELOG.md has no released version (## [X.Y.Z] - YYYY-MM-DD)")
        let workspace = try CommandLineWorkspace(prefix: "docs-version")
        let result = try await workspace.run(["--version"])
        #expect(result.termination == .exited(0), "\(result.output)")
        #expect(
            result.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines) == latest,
            "nethost --version says \(result.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)); CHANGELOG.md's latest release is \(latest): update NetHostVersion.current (Sources/NetHostCore/NetHostCore.swift) or the changelog"
        )
    }

    /// Every example of README.md and docs/*.md, run as its info string says.
    @Test
    func everyExampleRuns() async throws {
        let pages = try Self.pages()
        let examples = try pages.flatMap { try DocExample.all(in: $0) }
        #expect(examples.contains { $0.kind == .config }, "found no config example; is the extraction broken?")
        #expect(examples.contains { if case .module = $0.kind { true } else { false } }, "found no module example")
        for example in examples where example.kind == .unclassified {
            Issue.record("\(example.location): a ```lua block must say what it is: ```lua config or ```lua module NAME")
        }
        let haproxy = ["/usr/sbin/haproxy", "/usr/bin/haproxy"].first { FileManager.default.isExecutableFile(atPath: $0) }
        // A few at a time: each is a nethost (or haproxy) process of its own.
        let runnable = examples.filter { $0.kind != .unclassified }
        var failures: [String] = []
        for start in stride(from: 0, to: runnable.count, by: 4) {
            let batch = runnable[start..<min(start + 4, runnable.count)]
            failures += try await withThrowingTaskGroup(of: String?.self) { group in
                for example in batch {
                    group.addTask { try await Self.run(example, page: examples.filter { $0.file == example.file }, haproxy: haproxy) }
                }
                var found: [String] = []
                for try await failure in group { if let failure { found.append(failure) } }
                return found
            }
        }
        for failure in failures.sorted() { Issue.record("\(failure)") }
    }

    /// The extraction itself: kinds, names, lines and indentation.
    @Test
    func examplesAreFoundWithTheirLines() throws {
        let text = """
            # Page

            ```lua config
            modules_enabled = { "demo_echo" }
            ```

            - a list item:

              ```lua module hello
              module:log("info", "hi")
              ```

            ```lua
            x = 1
            ```

            ```sh
            ls
            ```
            """
        let examples = try DocExample.all(in: ("page.md", text))
        #expect(examples.map(\.kind) == [.config, .module("hello"), .unclassified])
        #expect(examples.map(\.line) == [3, 9, 13])
        #expect(examples[1].code == "module:log(\"info\", \"hi\")\n")
    }

    static func pages() throws -> [(file: String, text: String)] {
        let docs = (try? FileManager.default.contentsOfDirectory(atPath: root + "/docs")) ?? []
        let names = ["README.md"] + docs.filter { $0.hasSuffix(".md") }.sorted().map { "docs/" + $0 }
        return try names.map { ($0, try String(contentsOfFile: root + "/" + $0, encoding: .utf8)) }
    }

    /// Runs a checker to its end: its exit status and its output (stdout and stderr together).
    static func execute(_ executable: String, _ arguments: [String]) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// Runs one example; nil if it passed, else what went wrong, with its file and line.
    static func run(_ example: DocExample, page: [DocExample], haproxy: String?) async throws -> String? {
        let workspace = try CommandLineWorkspace(prefix: "docs-example")
        var modules: [String] = []
        for other in page {
            if case .module(let name) = other.kind {
                try workspace.write(other.code, to: "plugins/mod_\(name).lua")
                modules.append(name)
            }
        }
        // As if the reader had saved the page's modules where it says; a config that
        // names plugin_paths itself keeps its own (setting it twice is a warning).
        let pluginPaths = modules.isEmpty || example.code.contains("plugin_paths") ? "" : "plugin_paths = { \"plugins\" }\n"
        switch example.kind {
        case .config:
            let config = try workspace.write(pluginPaths + example.code, to: "prosody.cfg.lua")
            let result = try await workspace.run(["check", "--config", config])
            if result.termination != .exited(0) {
                return "\(example.location): this config example fails `nethost check`:\n\(result.output)"
            }
        case .module(let name):
            let config = try workspace.write("plugin_paths = { \"plugins\" }\nmodules_enabled = { \"\(name)\" }\n", to: "prosody.cfg.lua")
            let result = try await workspace.run(["check", "--config", config])
            if result.termination != .exited(0) {
                return "\(example.location): this module example (mod_\(name)) does not load:\n\(result.output)"
            }
        case .haproxy:
            guard let haproxy else {
                return "\(example.location): needs haproxy to check this HAProxy example (scripts/install-deps --test installs it)"
            }
            let file = try workspace.write(example.code, to: "haproxy.cfg")
            let (status, output) = try Self.execute(haproxy, ["-c", "-f", file])
            // 2: valid, but nothing to listen on (a snippet of backends only).
            if status != 0 && status != 2 {
                return "\(example.location): haproxy -c refuses this HAProxy example:\n\(output)"
            }
        case .nginx:
            let nginx = "/usr/sbin/nginx"
            guard FileManager.default.isExecutableFile(atPath: nginx),
                  FileManager.default.fileExists(atPath: NginxFixture.streamModulePath) else {
                return "\(example.location): needs nginx and its stream module to check this nginx example (scripts/install-deps --test installs them)"
            }
            let file = try workspace.write(
                """
                error_log stderr;
                pid \(workspace.path("nginx.pid"));
                load_module \(NginxFixture.streamModulePath);
                events {}
                \(example.code)
                """, to: "nginx.conf")
            let (status, output) = try Self.execute(nginx, ["-t", "-q", "-c", file, "-p", workspace.root, "-e", "stderr"])
            if status != 0 {
                return "\(example.location): nginx -t refuses this nginx example:\n\(output)"
            }
        case .unclassified:
            break
        }
        return nil
    }
}

/// One fenced code block of a page that the test runs.
struct DocExample: Sendable {
    enum Kind: Sendable, Equatable {
        case config
        case module(String)
        case haproxy
        case nginx
        case unclassified
    }

    let file: String
    /// The line of its opening fence (1-based).
    let line: Int
    let kind: Kind
    /// Its lines, the fence's indentation taken off.
    let code: String

    var location: String { "\(file):\(line)" }

    /// The blocks of `page` this test runs: ```lua ..., ```haproxy and ```nginx.
    static func all(in page: (file: String, text: String)) throws -> [DocExample] {
        var examples: [DocExample] = []
        let lines = page.text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var index = 0
        while index < lines.count {
            let line = lines[index]
            let trimmed = line.drop { $0 == " " }
            guard trimmed.hasPrefix("```") else {
                index += 1
                continue
            }
            let indent = line.count - trimmed.count
            let info = trimmed.dropFirst(3).split(separator: " ").map(String.init)
            var body: [String] = []
            var end = index + 1
            while end < lines.count, lines[end].drop(while: { $0 == " " }) != "```" {
                body.append(String(lines[end].dropFirst(min(indent, lines[end].prefix { $0 == " " }.count))))
                end += 1
            }
            guard end < lines.count else {
                throw FixtureError("\(page.file):\(index + 1): a code block that is never closed")
            }
            let kind: Kind? = switch (info.first, info.dropFirst().first) {
            case ("lua", "config"): .config
            case ("lua", "module"): info.count > 2 ? .module(info[2]) : .unclassified
            case ("lua", _): .unclassified
            case ("haproxy", _): .haproxy
            case ("nginx", _): .nginx
            default: nil
            }
            if let kind {
                examples.append(DocExample(file: page.file, line: index + 1, kind: kind, code: body.map { $0 + "\n" }.joined()))
            }
            index = end + 1
        }
        return examples
    }
}

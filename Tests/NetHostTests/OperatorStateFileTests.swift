import Foundation
import Testing
@testable import NetHost

/// The operator's state file (`agent_check_state_file`): its first word decides,
/// and a file whose meaning is unclear takes the instance out rather than in.
@Suite("Agent check operator state file")
struct OperatorStateFileTests {
    @Test("the first word of the first line decides", arguments: [
        ("maint\n", OperatorStateFile.Reading.state(.maint)),
        ("MAINT", .state(.maint)),
        ("  drain  for the night\n", .state(.drain)),
        ("down\n", .state(.down(reason: nil))),
        ("down upgrading the kernel\nsecond line ignored\n", .state(.down(reason: "upgrading the kernel"))),
        ("down\tsee\tticket 12\r\n", .state(.down(reason: "see ticket 12"))),
        ("up\n", .none),
        ("ready", .none),
        // touch: an empty file takes the instance out.
        ("", .state(.maint)),
        ("\n", .state(.maint)),
    ])
    func parse(text: String, reading: OperatorStateFile.Reading) {
        #expect(OperatorStateFile.parse(text) == reading)
    }

    @Test("a word it does not know, or a first line left empty, is maint with a reason to warn", arguments: [
        "maintenance\n", "drian", "\nmaint\n",
    ])
    func unclear(text: String) {
        let reading = OperatorStateFile.parse(text)
        guard case .unclear(.maint, let problem) = reading else {
            Issue.record("\(text.debugDescription) read as \(reading)")
            return
        }
        #expect(!problem.isEmpty)
    }

    @Test("a reason keeps to printable ASCII and 100 characters")
    func reasonIsSanitised() {
        #expect(OperatorStateFile.parse("down a\u{7}b é c\n") == .state(.down(reason: "ab  c")))
        let long = String(repeating: "x", count: 300)
        #expect(OperatorStateFile.parse("down \(long)") == .state(.down(reason: String(repeating: "x", count: 100))))
        #expect(OperatorStateFile.parse("down \u{7}\u{1b}") == .state(.down(reason: nil)))
    }

    @Test("reading a real file: missing is none, present is parsed, a folder is maint")
    func readsFiles() throws {
        let folder = NSTemporaryDirectory() + "nethost-state-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/agent-state"
        #expect(OperatorStateFile.reading(at: path) == .none)
        #expect(OperatorStateFile.reading(at: folder + "/missing-folder/agent-state") == .none)
        try "down backups running\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(OperatorStateFile.reading(at: path) == .state(.down(reason: "backups running")))
        _ = FileManager.default.createFile(atPath: path, contents: Data())
        #expect(OperatorStateFile.reading(at: path) == .state(.maint))
        // Only the start is read: a huge file costs no more than a small one.
        try ("drain" + String(repeating: " ", count: 100_000) + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        #expect(OperatorStateFile.reading(at: path) == .state(.drain))
        guard case .unclear(.maint, let problem) = OperatorStateFile.reading(at: folder) else {
            Issue.record("a folder in the file's place was not read as maint")
            return
        }
        #expect(problem.contains("cannot be read"), "\(problem)")
    }
}

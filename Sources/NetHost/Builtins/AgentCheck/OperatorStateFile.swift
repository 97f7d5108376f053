#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How an operator takes an instance out of rotation without talking to the
/// process: a file named by `agent_check_state_file`. While it exists, its first
/// word is what the agent reports: `maint`, `down` (the rest of the line is the
/// reason HAProxy shows) or `drain`; `up` or `ready` report as if it were not there.
/// `touch`ing it (an empty file) means `maint`, and so does a word it does not know
/// or a file it cannot read (with a warning): the operator made the file to take the
/// instance out, and a typo should not put it back in. Removing the file brings the
/// instance back at the next check.
///
///     echo "down upgrading the kernel" > /run/nethost/agent-state
///     rm /run/nethost/agent-state
public enum OperatorStateFile {
    /// What reading the file found.
    public enum Reading: Sendable, Equatable {
        /// No file, or one saying `up` / `ready`: the agent reports the instance's own state.
        case none
        case state(AgentCheckReply.OperatorState)
        /// Taken as `maint`; the text says why, for the warning.
        case unclear(AgentCheckReply.OperatorState, problem: String)

        public var operatorState: AgentCheckReply.OperatorState? {
            switch self {
            case .none: return nil
            case .state(let state), .unclear(let state, _): return state
            }
        }
    }

    /// Only the start of the file matters; this much is read at most.
    static let maximumBytes = 512
    /// HAProxy shows the reason in its log and stats; a long one is cut.
    static let maximumReasonLength = 100

    /// What the file's text says.
    public static func parse(_ text: String) -> Reading {
        let firstLine = text.split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r" }.first ?? ""
        let words = firstLine.split(omittingEmptySubsequences: true) { $0 == " " || $0 == "\t" }
        guard let first = words.first else {
            return text.allSatisfy(\.isWhitespace)
                ? .state(.maint)
                : .unclear(.maint, problem: "its first line is empty")
        }
        switch first.lowercased() {
        case "maint": return .state(.maint)
        case "drain": return .state(.drain)
        case "down": return .state(.down(reason: reason(words.dropFirst().joined(separator: " "))))
        case "up", "ready": return .none
        default: return .unclear(.maint, problem: "its first word '\(first.prefix(40))' is none of maint, down, drain, up")
        }
    }

    /// Printable ASCII only (a newline would end the agent's line early), and short.
    static func reason(_ text: String) -> String? {
        let printable = String(text.unicodeScalars.filter { $0.value >= 0x20 && $0.value < 0x7f }.map(Character.init))
        let trimmed = printable.prefix(maximumReasonLength).trimmingSpaces
        return trimmed.isEmpty ? nil : trimmed
    }

    /// Reads the file at `path`: blocking, so call it off the event loops.
    public static func reading(at path: String) -> Reading {
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            let error = errno
            if error == ENOENT || error == ENOTDIR { return .none }
            return .unclear(.maint, problem: "it cannot be read: \(String(cString: strerror(error)))")
        }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: maximumBytes)
        var count = 0
        while count < bytes.count {
            let got = bytes.withUnsafeMutableBytes { buffer -> Int in
                guard let base = buffer.baseAddress else { return 0 }
                return read(fd, base + count, buffer.count - count)
            }
            if got > 0 {
                count += got
            } else if got == 0 {
                break
            } else if errno != EINTR {
                let error = errno
                return .unclear(.maint, problem: "it cannot be read: \(String(cString: strerror(error)))")
            }
        }
        return parse(String(decoding: bytes[..<count], as: UTF8.self))
    }
}

extension Substring {
    fileprivate var trimmingSpaces: String {
        String(self.drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}

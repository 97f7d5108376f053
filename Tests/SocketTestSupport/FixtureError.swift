#if canImport(Glibc)
import Glibc

/// `SOCK_STREAM` as `socket(2)` takes it (an enum on Glibc, an Int32 elsewhere).
public let streamSocketType = Int32(SOCK_STREAM.rawValue)
#elseif canImport(Darwin)
import Darwin

public let streamSocketType = SOCK_STREAM
#endif

/// Why a fixture could not do what a test asked: a missing program, a process that
/// died, a port that never opened, a connection refused. The message says what and,
/// where it helps, shows the tail of the program's output.
public struct FixtureError: Error, CustomStringConvertible {
    public let message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { self.message }
}

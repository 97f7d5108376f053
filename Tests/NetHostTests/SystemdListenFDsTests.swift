import NetHostCore
import Testing

/// sd_listen_fds(3)'s variables, read without touching a descriptor.
@Suite("systemd socket activation variables")
struct SystemdListenFDsTests {
    @Test("LISTEN_FDS for this process: descriptors from 3, with their names when LISTEN_FDNAMES has one each")
    func forThisProcess() throws {
        let passed = try #require(try SystemdListenFDs(
            environment: ["LISTEN_FDS": "2", "LISTEN_PID": "77", "LISTEN_FDNAMES": "proxy:metrics"], pid: 77
        ))
        #expect(passed.descriptors == [3, 4])
        #expect(passed.names == ["proxy", "metrics"])
        let unnamed = try #require(try SystemdListenFDs(environment: ["LISTEN_FDS": "1", "LISTEN_PID": "77", "LISTEN_FDNAMES": "a:b"], pid: 77))
        #expect(unnamed.names.isEmpty)
    }

    @Test("nothing without the variables, or when they were meant for another process (a parent's, inherited)")
    func notForThisProcess() throws {
        #expect(try SystemdListenFDs(environment: [:], pid: 77) == nil)
        #expect(try SystemdListenFDs(environment: ["LISTEN_FDS": "2", "LISTEN_PID": "76"], pid: 77) == nil)
    }

    @Test("a malformed LISTEN_FDS or LISTEN_PID is an error that says which")
    func malformed() {
        #expect(throws: HandOverError("LISTEN_FDS is not a number of descriptors: two")) {
            try SystemdListenFDs(environment: ["LISTEN_FDS": "two", "LISTEN_PID": "77"], pid: 77)
        }
        #expect(throws: HandOverError("LISTEN_FDS is set but LISTEN_PID is not a process id (unset)")) {
            try SystemdListenFDs(environment: ["LISTEN_FDS": "1"], pid: 77)
        }
    }
}

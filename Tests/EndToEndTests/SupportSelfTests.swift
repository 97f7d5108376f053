import Foundation
import NIOCore
import SocketTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// These tests prove the end-to-end fixtures work, against the real programs: HAProxy
// and nginx must be installed (CI installs them); if they are not, these tests fail
// with the install command rather than skip.
//
// They read PROXY headers at fixed offsets, not with the ProxyProtocol parser, so that
// they check the fixtures and the proxies independently of it.

/// The 12 bytes that open every PROXY v2 header.
private let v2Signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]

private func bigEndian16(_ bytes: [UInt8], at offset: Int) -> Int {
    Int(bytes[offset]) << 8 | Int(bytes[offset + 1])
}

private func portBytes(_ port: Int) -> [UInt8] {
    [UInt8(port >> 8), UInt8(port & 0xff)]
}

/// The TLVs of a v2 header (type, value), read from offset 16 + address block length.
private func tlvs(_ bytes: [UInt8], addressBlockLength: Int) -> [(type: UInt8, value: [UInt8])] {
    let end = 16 + bigEndian16(bytes, at: 14)
    var offset = 16 + addressBlockLength
    var result: [(UInt8, [UInt8])] = []
    while offset + 3 <= end {
        let length = bigEndian16(bytes, at: offset + 1)
        guard offset + 3 + length <= end else { break }
        result.append((bytes[offset], Array(bytes[offset + 3..<offset + 3 + length])))
        offset += 3 + length
    }
    return result
}

/// CRC-32C (Castagnoli), as PP2_TYPE_CRC32C carries it.
private func crc32c(_ bytes: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in bytes {
        crc ^= UInt32(byte)
        for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
    }
    return ~crc
}

private func isV2Header(_ bytes: [UInt8]) -> Bool {
    bytes.count >= 16 && Array(bytes.prefix(12)) == v2Signature
}

// MARK: - Processes and ports

@Suite("Support: ports and processes")
struct ProcessSupportTests {
    @Test
    func freePortIsFreeOnBothLoopbacksAndNotHandedOutTwice() async throws {
        let port = try FreePort.allocate()
        #expect(port > 0)
        let v4 = try await RecordingServer.start(host: "127.0.0.1", port: port)
        let v6 = try await RecordingServer.start(host: "::1", port: port)
        try await v4.stop()
        try await v6.stop()
        #expect(try FreePort.allocate() != port)
    }

    @Test
    func waitForPortSeesAListenerWithoutConnectingToIt() async throws {
        let server = try await RecordingServer.start(host: "127.0.0.1")
        try await waitForPort(host: "127.0.0.1", port: server.port, timeout: .seconds(5))
        let v6 = try await RecordingServer.start(host: "::1")
        try await waitForPort(host: "::1", port: v6.port, timeout: .seconds(5))
        try await Task.sleep(for: .milliseconds(100))
        #expect(server.connections.isEmpty)
        #expect(v6.connections.isEmpty)
    }

    #if os(Linux)
    @Test("the listening sockets: netlink and the /proc tables name the same ones, and a socket bound but not listening is not one")
    func listeningSocketsFromBothSources() throws {
        func open(_ host: String, listen: Bool) throws -> (fd: Int32, port: Int) {
            let any = try SocketAddressStorage(host: host, port: 0)
            let fd = socket(any.family, streamSocketType, 0)
            try #require(fd >= 0)
            #expect(any.withSockAddr { bind(fd, $0, $1) } == 0)
            if listen { #expect(Glibc.listen(fd, 4) == 0) }
            var bound = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            _ = withUnsafeMutablePointer(to: &bound) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
            let port = withUnsafeBytes(of: bound) { Int($0[2]) << 8 | Int($0[3]) }  // sin_port and sin6_port, big-endian, at byte 2
            return (fd, port)
        }
        let v4 = try open("127.0.0.1", listen: true), v6 = try open("::1", listen: true), quiet = try open("127.0.0.1", listen: false)
        defer { for fd in [v4.fd, v6.fd, quiet.fd] { close(fd) } }
        let own = socketInodes(of: getpid())

        let fromNetlink = try #require(SocketDiagnostics.listeningTCP(), "the kernel did not answer over netlink")
        let fromProc = try #require(TCPListeners.fromProcTables(inodes: own)).entries
        let mine = fromNetlink.filter { own.contains($0.inode) }
        #expect(Set(mine.map(\.inode)) == Set(fromProc.map(\.inode)))
        for entry in mine { #expect(fromProc.contains(entry), "\(entry)") }

        let listeners = try #require(TCPListeners.read(ownedBy: getpid()))
        #expect(listeners.contains(try SocketAddressStorage(host: "127.0.0.1", port: v4.port)))
        #expect(listeners.contains(try SocketAddressStorage(host: "::1", port: v6.port)))
        #expect(!listeners.contains(try SocketAddressStorage(host: "::1", port: v4.port)))
        #expect(!listeners.contains(try SocketAddressStorage(host: "127.0.0.1", port: quiet.port)))
        #expect(!isListening(try SocketAddressStorage(host: "127.0.0.1", port: quiet.port), ownedBy: getpid()))
        #expect(isListening(try SocketAddressStorage(host: "127.0.0.1", port: v4.port), ownedBy: getpid()))
    }
    #endif

    @Test
    func waitForPortTimesOutOnAClosedPort() async throws {
        let port = try FreePort.allocate()
        let error = await #expect(throws: FixtureError.self) {
            try await waitForPort(host: "127.0.0.1", port: port, timeout: .milliseconds(200))
        }
        #expect(error?.description.contains("nothing listens on 127.0.0.1:\(port)") == true)
    }

    @Test
    func managedProcessCapturesOutputWithEnvironmentAndWorkingDirectory() async throws {
        let folder = try TemporaryDirectory(prefix: "cwd")
        // The sleep only has to outlast the checks below, which stop it; those can wait
        // tens of seconds for a thread when the whole suite runs under ThreadSanitizer.
        let process = try ManagedProcess(
            executable: "sh",
            arguments: ["-c", "echo \"cwd=$(pwd)\"; echo \"greeting=$GREETING\" >&2; exec sleep 600"],
            environment: ["GREETING": "hello from the test"],
            workingDirectory: folder.path
        )
        defer { process.stop() }
        #expect(try await process.waitForLogLine(containing: "greeting=") == "greeting=hello from the test")
        #expect(try await process.waitForLogLine(containing: "cwd=") == "cwd=\(folder.path)")
        #expect(process.standardOutput == "cwd=\(folder.path)\n")
        #expect(process.standardError == "greeting=hello from the test\n")
        #expect(process.isRunning)
        #expect(process.stop() == .signalled(SIGTERM))
        #expect(!process.isRunning)
        #expect(process.stop() == .signalled(SIGTERM))
    }

    @Test
    func stopEscalatesToSIGKILLWhenSIGTERMIsIgnored() async throws {
        let process = try ManagedProcess(
            executable: "sh",
            arguments: ["-c", "trap '' TERM; echo ready; while :; do sleep 0.05; done"]
        )
        try await process.waitForLogLine(containing: "ready")
        let clock = ContinuousClock()
        let started = clock.now
        #expect(process.stop(timeout: .milliseconds(300)) == .signalled(SIGKILL))
        #expect(clock.now - started >= .milliseconds(300))
    }

    @Test
    func droppingTheLastReferenceStopsAndReapsTheProcess() async throws {
        var pid: pid_t = 0
        do {
            let process = try ManagedProcess(executable: "sleep", arguments: ["30"])
            pid = process.pid
            #expect(kill(pid, 0) == 0)
        }
        // Reaped, not a zombie: the PID is gone.
        #expect(kill(pid, 0) == -1 && errno == ESRCH)
    }

    @Test
    func waitForLogLineReportsAnEarlyExitWithTheOutput() async throws {
        let process = try ManagedProcess(executable: "sh", arguments: ["-c", "echo 'bad config, line 3'; exit 3"])
        let error = await #expect(throws: FixtureError.self) {
            try await process.waitForLogLine(containing: "listening", timeout: .seconds(10))
        }
        #expect(error?.description.contains("exited with status 3") == true)
        #expect(error?.description.contains("bad config, line 3") == true)
        #expect(try await process.waitForExit() == .exited(3))
    }

    @Test
    func aMissingServerProgramFailsWithTheInstallCommand() async throws {
        let directory = try TemporaryDirectory(prefix: "missing")
        let error = await #expect(throws: FixtureError.self) {
            _ = try await launchServer(
                program: "haproxy-not-installed",
                installHint: "apt-get install haproxy",
                arguments: [],
                directory: directory,
                listeners: [],
                timeout: .seconds(1)
            )
        }
        #expect(error?.description.contains("haproxy-not-installed is needed by this test but is not installed") == true)
        #expect(error?.description.contains("install it with: apt-get install haproxy") == true)
    }

    @Test
    func aMissingProgramIsNamed() {
        let error = #expect(throws: FixtureError.self) {
            try ManagedProcess.resolveExecutable("nethost-no-such-program")
        }
        #expect(error?.description.contains("nethost-no-such-program not found") == true)
    }
}

// MARK: - TestClient

@Suite("Support: TestClient")
struct TestClientTests {
    @Test(arguments: [("127.0.0.5", "127.0.0.1"), ("::1", "::1")])
    func connectsFromTheChosenSourceAddress(source: String, serverHost: String) async throws {
        let server = try await RecordingServer.start(host: serverHost, reply: .init(when: "ping\n", reply: "pong\n"))
        let client = try TestClient(connectingTo: serverHost, port: server.port, from: source)
        #expect(client.localAddress.host == source)
        try client.send("ping\n")
        #expect(try client.read(until: "\n") == "pong\n")
        let connection = try await server.waitForConnection(containing: "ping\n")
        #expect(connection.remoteAddress?.ipAddress == source)
        #expect(connection.remoteAddress?.port == client.localPort)
    }

    @Test
    func seesThePeerClose() async throws {
        let server = try await RecordingServer.start(reply: .init(when: "quit\n", reply: "bye\n", close: true))
        let client = try TestClient(connectingTo: "127.0.0.1", port: server.port)
        try client.send("quit\n")
        #expect(try client.readToEnd() == Array("bye\n".utf8))
        #expect(client.peerClosed)
    }

    @Test
    func readTimesOutWithWhatArrived() async throws {
        let server = try await RecordingServer.start(reply: .init(when: "x", reply: "partial"))
        let client = try TestClient(connectingTo: "127.0.0.1", port: server.port)
        try client.send("x")
        #expect(throws: TestClient.ReadError.timedOut(received: Array("partial".utf8))) {
            try client.read(until: Array("\n".utf8), timeout: .milliseconds(300))
        }
        #expect(!(try client.waitForPeerClose(timeout: .milliseconds(100))))
    }
}

// MARK: - HAProxy

@Suite("Support: HAProxy fixture")
struct HAProxyFixtureTests {
    @Test
    func sendProxyV1NamesTheClient() async throws {
        let backend = try await RecordingServer.start(reply: .init(when: "hello-v1\n", reply: "ok\n"))
        let haproxy = try await HAProxyFixture.start(.init(backendPort: backend.port, sendProxy: .v1))
        defer { haproxy.stop() }

        let client = try TestClient(connectingTo: "127.0.0.1", port: haproxy.frontendPort, from: "127.0.0.5")
        try client.send("hello-v1\n")
        #expect(try client.read(until: "\n") == "ok\n")

        let received = try await backend.waitForConnection(containing: "hello-v1\n").bytes
        let expected = "PROXY TCP4 127.0.0.5 127.0.0.1 \(client.localPort) \(haproxy.frontendPort)\r\nhello-v1\n"
        #expect(printable(received) == printable(Array(expected.utf8)))
    }

    @Test
    func sendProxyV2NamesTheClient() async throws {
        let backend = try await RecordingServer.start(reply: .init(when: "hello-v2\n", reply: "ok\n"))
        let haproxy = try await HAProxyFixture.start(.init(backendPort: backend.port, sendProxy: .v2))
        defer { haproxy.stop() }

        let client = try TestClient(connectingTo: "127.0.0.1", port: haproxy.frontendPort, from: "127.0.0.5")
        try client.send("hello-v2\n")
        #expect(try client.read(until: "\n") == "ok\n")

        let bytes = try await backend.waitForConnection(containing: "hello-v2\n").bytes
        try #require(isV2Header(bytes), "not a v2 header: \(printable(bytes))")
        #expect(bytes[12] == 0x21, "version 2, command PROXY")
        #expect(bytes[13] == 0x11, "TCP over IPv4")
        #expect(bigEndian16(bytes, at: 14) == 12, "addresses only, no TLVs")
        #expect(Array(bytes[16..<20]) == [127, 0, 0, 5], "source address")
        #expect(Array(bytes[20..<24]) == [127, 0, 0, 1], "destination address")
        #expect(Array(bytes[24..<26]) == portBytes(client.localPort), "source port")
        #expect(Array(bytes[26..<28]) == portBytes(haproxy.frontendPort), "destination port")
        #expect(Array(bytes[28...]) == Array("hello-v2\n".utf8), "the client's bytes follow the header")
    }

    @Test
    func sendProxyV2OverIPv6() async throws {
        let backend = try await RecordingServer.start(host: "::1", reply: .init(when: "hello-v6\n", reply: "ok\n"))
        let haproxy = try await HAProxyFixture.start(
            .init(backendPort: backend.port, sendProxy: .v2, frontendHosts: ["::1"], backendHost: "::1"))
        defer { haproxy.stop() }

        let client = try TestClient(connectingTo: "::1", port: haproxy.frontendPort, from: "::1")
        try client.send("hello-v6\n")
        #expect(try client.read(until: "\n") == "ok\n")

        let bytes = try await backend.waitForConnection(containing: "hello-v6\n").bytes
        try #require(isV2Header(bytes), "not a v2 header: \(printable(bytes))")
        let loopback6: [UInt8] = Array(repeating: 0, count: 15) + [1]
        #expect(bytes[12] == 0x21)
        #expect(bytes[13] == 0x21, "TCP over IPv6")
        #expect(bigEndian16(bytes, at: 14) == 36)
        #expect(Array(bytes[16..<32]) == loopback6, "source address")
        #expect(Array(bytes[32..<48]) == loopback6, "destination address")
        #expect(Array(bytes[48..<50]) == portBytes(client.localPort), "source port")
        #expect(Array(bytes[50..<52]) == portBytes(haproxy.frontendPort), "destination port")
    }

    @Test
    func proxyV2OptionsAddCRC32CAndUniqueIDTLVs() async throws {
        let backend = try await RecordingServer.start(reply: .init(when: "hello-tlv\n", reply: "ok\n"))
        let haproxy = try await HAProxyFixture.start(
            .init(
                backendPort: backend.port,
                sendProxy: .v2,
                proxyV2Options: ["authority", "crc32c", "unique-id"],
                uniqueIDFormat: "%{+X}o\\ %ci:%cp"
            ))
        defer { haproxy.stop() }

        let client = try TestClient(connectingTo: "127.0.0.1", port: haproxy.frontendPort, from: "127.0.0.5")
        try client.send("hello-tlv\n")
        #expect(try client.read(until: "\n") == "ok\n")

        let bytes = try await backend.waitForConnection(containing: "hello-tlv\n").bytes
        try #require(isV2Header(bytes), "not a v2 header: \(printable(bytes))")
        let headerLength = 16 + bigEndian16(bytes, at: 14)
        let found = tlvs(bytes, addressBlockLength: 12)
        // No TLS on the client side, so no authority (SNI) TLV: only CRC32C and the unique ID.
        #expect(found.map(\.type) == [0x03, 0x05])
        let uniqueID = String(decoding: found.first(where: { $0.type == 0x05 })?.value ?? [], as: UTF8.self)
        let hexPort = String(client.localPort, radix: 16, uppercase: true)
        #expect(uniqueID == "7F000005:" + String(repeating: "0", count: 4 - hexPort.count) + hexPort)

        // The CRC is over the whole header with the CRC field itself zeroed.
        let crcValue = try #require(found.first(where: { $0.type == 0x03 })?.value)
        var zeroed = Array(bytes[..<headerLength])
        let crcOffset = 16 + 12 + 3
        zeroed.replaceSubrange(crcOffset..<crcOffset + 4, with: [0, 0, 0, 0])
        let sent = crcValue.reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        #expect(sent == crc32c(zeroed))
        #expect(Array(bytes[headerLength...]) == Array("hello-tlv\n".utf8))
    }

    @Test(arguments: [HAProxyFixture.Configuration.SendProxy.v2SSL, .v2SSLCN])
    func sendProxyV2SSLWithAPlainClientSendsAnEmptySSLTLV(_ sendProxy: HAProxyFixture.Configuration.SendProxy) async throws {
        let backend = try await RecordingServer.start(reply: .init(when: "hello-ssl\n", reply: "ok\n"))
        let haproxy = try await HAProxyFixture.start(.init(backendPort: backend.port, sendProxy: sendProxy))
        defer { haproxy.stop() }

        let client = try TestClient(connectingTo: "127.0.0.1", port: haproxy.frontendPort, from: "127.0.0.5")
        try client.send("hello-ssl\n")
        #expect(try client.read(until: "\n") == "ok\n")

        let bytes = try await backend.waitForConnection(containing: "hello-ssl\n").bytes
        try #require(isV2Header(bytes), "not a v2 header: \(printable(bytes))")
        #expect(bigEndian16(bytes, at: 14) == 12 + 8)
        // PP2_TYPE_SSL, length 5: client flags 0 (not TLS), verify 0, no sub-TLVs
        // (no CN either, the client sent no certificate).
        #expect(Array(bytes[28..<36]) == [0x20, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00])
        #expect(Array(bytes[36...]) == Array("hello-ssl\n".utf8))
    }

    @Test
    func healthCheckWithCheckSendProxySendsAV2LocalHeader() async throws {
        let backend = try await RecordingServer.start()
        let haproxy = try await HAProxyFixture.start(
            .init(backendPort: backend.port, sendProxy: .v2, healthCheck: .init(sendProxy: true, interval: .milliseconds(100))))
        defer { haproxy.stop() }

        let check = try await backend.waitForConnection { $0.bytes.count >= 16 }
        try #require(isV2Header(check.bytes), "not a v2 header: \(printable(check.bytes))")
        #expect(check.bytes[12] == 0x20, "version 2, command LOCAL")
        #expect(check.bytes[13] == 0x00, "family UNSPEC")
        #expect(bigEndian16(check.bytes, at: 14) == 0, "no address block")
        #expect(check.bytes.count == 16, "nothing after the header: \(printable(check.bytes))")
    }

    @Test
    func healthCheckWithSendProxyV1SendsTheCheckConnectionsOwnAddresses() async throws {
        let backend = try await RecordingServer.start()
        let haproxy = try await HAProxyFixture.start(
            .init(backendPort: backend.port, sendProxy: .v1, healthCheck: .init(sendProxy: true, interval: .milliseconds(100))))
        defer { haproxy.stop() }

        // v1 has no LOCAL command: HAProxy describes the check connection itself
        // (its own source address and port, the server's address and port).
        let check = try await backend.waitForConnection { $0.bytes.contains(subsequence: Array("\r\n".utf8)) }
        // (The check connection is often gone by the time it is accepted, so its
        // address is not always known here: match the port as any number.)
        let line = String(decoding: check.bytes, as: UTF8.self)
        #expect(line.wholeMatch(of: /PROXY TCP4 127\.0\.0\.1 127\.0\.0\.1 [0-9]+ (?<port>[0-9]+)\r\n/)?.port == "\(backend.port)"[...])
    }

    @Test
    func aBadConfigFailsWithHAProxysOwnWords() async throws {
        var configuration = HAProxyFixture.Configuration(backendPort: 1)
        configuration.extraServerOptions = ["no-such-server-option"]
        let error = await #expect(throws: FixtureError.self) {
            _ = try await HAProxyFixture.start(configuration)
        }
        #expect(error?.description.contains("haproxy did not start") == true)
        #expect(error?.description.contains("no-such-server-option") == true)
    }
}

// MARK: - nginx

@Suite("Support: nginx fixture")
struct NginxFixtureTests {
    @Test
    func proxyProtocolOnNamesAnIPv4Client() async throws {
        let backend = try await RecordingServer.start(reply: .init(when: "hello-nginx\n", reply: "ok\n"))
        let nginx = try await NginxFixture.start(.init(upstreamPort: backend.port))
        defer { nginx.stop() }

        let client = try TestClient(connectingTo: "127.0.0.1", port: nginx.listenPort, from: "127.0.0.5")
        try client.send("hello-nginx\n")
        #expect(try client.read(until: "\n") == "ok\n")

        let received = try await backend.waitForConnection(containing: "hello-nginx\n").bytes
        let expected = "PROXY TCP4 127.0.0.5 127.0.0.1 \(client.localPort) \(nginx.listenPort)\r\nhello-nginx\n"
        #expect(printable(received) == printable(Array(expected.utf8)))
    }

    @Test
    func proxyProtocolOnNamesAnIPv6Client() async throws {
        let backend = try await RecordingServer.start(reply: .init(when: "hello-nginx6\n", reply: "ok\n"))
        let nginx = try await NginxFixture.start(.init(upstreamPort: backend.port, listenHosts: ["127.0.0.1", "::1"]))
        defer { nginx.stop() }

        let client = try TestClient(connectingTo: "::1", port: nginx.listenPort, from: "::1")
        try client.send("hello-nginx6\n")
        #expect(try client.read(until: "\n") == "ok\n")

        let received = try await backend.waitForConnection(containing: "hello-nginx6\n").bytes
        let expected = "PROXY TCP6 ::1 ::1 \(client.localPort) \(nginx.listenPort)\r\nhello-nginx6\n"
        #expect(printable(received) == printable(Array(expected.utf8)))
    }

    @Test
    func closingTheBackendClosesTheClient() async throws {
        let backend = try await RecordingServer.start(reply: .init(when: "quit\n", reply: "bye\n", close: true))
        let nginx = try await NginxFixture.start(.init(upstreamPort: backend.port))
        defer { nginx.stop() }

        let client = try TestClient(connectingTo: "127.0.0.1", port: nginx.listenPort, from: "127.0.0.5")
        try client.send("quit\n")
        #expect(try client.readToEnd() == Array("bye\n".utf8))
        #expect(client.peerClosed)
        #expect(nginx.log.contains("client 127.0.0.5:\(client.localPort) connected"))
    }
}

// MARK: - nethost

@Suite("Support: nethost fixture")
struct NetHostFixtureTests {
    @Test
    func theBinaryIsFoundBesideTheTestExecutable() throws {
        let path = try NetHostFixture.binaryPath()
        #expect(path.hasSuffix("/nethost"))
        if ProcessInfo.processInfo.environment["NETHOST_BINARY"] == nil {
            let tests = try #require(NetHostFixture.testExecutablePath())
            #expect(
                URL(fileURLWithPath: path).deletingLastPathComponent().path
                    == URL(fileURLWithPath: tests).deletingLastPathComponent().path)
        }
    }

    @Test
    func configAndModulesAreWrittenWhereTheConfigSays() async throws {
        // Runs nethost to completion on a config that cannot load: whatever nethost
        // does with it (report an error, or, before it exists, print and exit), it ends.
        let result = try await NetHostFixture.run(
            arguments: { ["check", "--config", $0.configFile] },
            config: { paths in
                #expect(paths.configFile == paths.directory + "/prosody.cfg.lua")
                #expect(FileManager.default.fileExists(atPath: paths.modulesDirectory))
                return "plugin_paths = { \"\(paths.modulesDirectory)\" }\nmodules_enabled = { \"nonexistent_module\" }\n"
            },
            modules: ["mod_hello.lua": "module:log(\"info\", \"hello\")\n"]
        )
        #expect(!result.output.isEmpty, "nethost said nothing: \(result.termination)")
    }

    /// The negative checks of the command-line tests ("check opened no port") rest on
    /// this: a nethost that does try to listen on a watched address is reported, even
    /// though it never gets to (the test holds the address meanwhile).
    @Test
    func runReportsAPortNethostTriedToOpen() async throws {
        let workspace = try CommandLineWorkspace(prefix: "watch")
        let (tried, untouched) = (try FreePort.allocate(), try FreePort.allocate())
        let config = try workspace.write(
            "modules_enabled = { \"demo_echo\" }\ninterfaces = { \"127.0.0.1\", \"::1\" }\ndemo_echo_ports = { \(tried) }\n",
            to: "prosody.cfg.lua")
        let result = try await workspace.run(
            ["--config", config], watching: CommandLineWorkspace.onLoopbacks(tried, untouched))
        #expect(result.termination == .exited(1), "it could open none of its ports: \(result.output)")
        #expect(result.listenedOn.sorted() == ["127.0.0.1:\(tried)", "[::1]:\(tried)"], "\(result.output)")
    }

    @Test
    func aNethostThatExitsEarlyIsReportedWithItsOutput() async throws {
        let error = await #expect(throws: FixtureError.self) {
            _ = try await NetHostFixture.start(
                config: "this is not Lua (",
                readiness: [.logLine("NETHOST-NEVER-PRINTS-THIS")]
            )
        }
        #expect(error?.description.contains("nethost did not start") == true)
        #expect(error?.description.contains("nethost (pid") == true)
    }
}

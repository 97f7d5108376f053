import Foundation
import SocketTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension InteropTests {
    /// HAProxy terminates TLS (`verify optional` client certificates, ALPN) and
    /// sends nethost a v2 header with the TLS facts as TLVs: SNI as authority,
    /// ALPN, and the SSL TLV with version, client certificate CN, cipher and the
    /// frontend certificate's signature and key algorithms. `openssl s_client` is
    /// the client, bound to 127.0.0.5 and a known port.
    @Suite("TLS-terminating HAProxy")
    struct TLSTermination {
        @Test("the service sees SNI, ALPN, TLS version and the client certificate's CN", arguments: [true, false])
        func serviceSeesTheTLSFacts(clientCertificate: Bool) async throws {
            let directory = try TemporaryDirectory(prefix: "interop-tls")
            let certificates = try await InteropCertificates.make(in: directory)

            let port = try FreePort.allocate()
            let nethost = try await InteropNetHost.start(ports: [port])
            defer { nethost.stop() }

            let frontendPort = try FreePort.allocate()
            var configuration = HAProxyFixture.Configuration(
                backendPort: port, sendProxy: .v2SSLCN, frontendHosts: [], frontendPort: frontendPort,
                proxyV2Options: ["ssl", "authority", "cert-cn", "ssl-cipher", "cert-sig", "cert-key"])
            configuration.extraFrontendLines = [
                "bind 127.0.0.1:\(frontendPort) ssl crt \(certificates.serverPEM) ca-file \(certificates.caPEM) verify optional alpn h2,http/1.1",
                interopHAProxyLogFormat,
            ]
            let haproxy = try await HAProxyFixture.start(configuration)
            defer { haproxy.stop() }
            try await waitForPort(host: "127.0.0.1", port: frontendPort) {
                haproxy.process.checkTermination().map { "haproxy \($0):\n\(tail(haproxy.log))" }
            }

            func arguments(clientPort: Int) -> [String] {
                var arguments = [
                    "s_client", "-connect", "127.0.0.1:\(frontendPort)", "-bind", "127.0.0.5:\(clientPort)",
                    "-servername", "example.com", "-alpn", "h2", "-CAfile", certificates.caPEM, "-verify_return_error",
                    // -quiet implies -ign_eof; -no_ign_eof makes s_client end the session
                    // (close_notify) and exit when its stdin is closed.
                    "-quiet", "-no_ign_eof", "-nocommands",
                ]
                if clientCertificate {
                    arguments += ["-cert", certificates.clientCertificate, "-key", certificates.clientKey]
                }
                return arguments
            }
            // The client's port is picked free, but may be taken before openssl binds
            // it (seen under ThreadSanitizer with the suite running): then another.
            var attempts = 0
            var clientPort: Int
            var client: InteropPipedProcess
            var line: [UInt8]
            while true {
                clientPort = try FreePort.allocate()
                client = try InteropPipedProcess(program: "openssl", arguments: arguments(clientPort: clientPort), directory: directory)
                do {
                    line = try await client.waitForOutput(containing: Array("\n".utf8))
                    break
                } catch is InteropPipedProcess.AddressInUse where attempts < 4 {
                    attempts += 1
                    client.stop()
                }
            }
            defer { client.stop() }
            let report = InteropReport.parse(String(decoding: line.dropLast(), as: UTF8.self))

            // Bytes after the TLS handshake make it through HAProxy and the echo.
            let payload = interopPayload(count: 16 * 1024, seed: clientCertificate ? 41 : 42)
            try client.send(payload.bytes)
            let echoed = try await client.waitForOutput(containing: payload.marker, after: line.count)
            #expect(echoed == payload.bytes, "the echo through TLS differs (\(echoed.count) of \(payload.bytes.count) bytes)")
            client.stop()

            let session = try await InteropSenderLog.haproxySession(haproxy, client: "127.0.0.5:\(clientPort)")
            let proxyPort = try #require(InteropSenderLog.port(of: session["backend_source"]), "HAProxy's session: \(session)")

            var expected = InteropReport.proxied(
                version: 2, client: "127.0.0.5", clientPort: clientPort,
                destination: "127.0.0.1", destinationPort: frontendPort,
                proxy: "127.0.0.1", proxyPort: proxyPort, serverPort: port)
            expected["authority"] = "example.com"
            expected["alpn"] = "h2"
            expected = InteropReport.withSSL(expected, [
                "ssl": "true",
                "cert_conn": clientCertificate ? "true" : "false",
                "verified": clientCertificate ? "true" : "false",
                "version": "TLSv1.3",
                "cn": clientCertificate ? InteropCertificates.clientCN : "nil",
                "cipher": "TLS_AES_256_GCM_SHA384",
                // Of HAProxy's own (frontend) certificate: ECDSA P-256, signed with SHA-256.
                "sig_alg": "ecdsa-with-SHA256",
                "key_alg": "EC256",
            ])
            // ALPN, authority, SSL, in HAProxy's order.
            expected["tlvs"] = "3"
            expected["tlv_types"] = "1,2,32"
            #expect(report == expected)
            #expect(!nethost.log.contains("invalid PROXY header"), "\(tail(nethost.log))")
        }
    }
}

// MARK: - Certificates

/// A throwaway CA, a server certificate for example.com (HAProxy's) and a client
/// certificate, all ECDSA P-256, made with the `openssl` command for one test.
struct InteropCertificates {
    static let clientCN = "alice.interop.test"

    let caPEM: String
    /// The server certificate and its key in one file, as HAProxy's `crt` takes it.
    let serverPEM: String
    let clientCertificate: String
    let clientKey: String

    static func make(in directory: TemporaryDirectory) async throws -> InteropCertificates {
        let key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        try await interopRun(
            "openssl", ["req", "-x509"] + key + ["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=NetHost interop test CA"],
            in: directory)
        try directory.write("subjectAltName=DNS:example.com\nextendedKeyUsage=serverAuth\n", to: "server.ext")
        try directory.write("extendedKeyUsage=clientAuth\n", to: "client.ext")
        for (name, subject) in [("server", "/CN=example.com"), ("client", "/CN=\(clientCN)")] {
            try await interopRun("openssl", ["req"] + key + ["-keyout", "\(name).key", "-out", "\(name).csr", "-subj", subject], in: directory)
            try await interopRun(
                "openssl",
                ["x509", "-req", "-in", "\(name).csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", "\(name).crt", "-days", "2", "-extfile", "\(name).ext"],
                in: directory)
        }
        let server = try String(contentsOfFile: directory.file("server.crt"), encoding: .utf8)
            + String(contentsOfFile: directory.file("server.key"), encoding: .utf8)
        return InteropCertificates(
            caPEM: directory.file("ca.pem"),
            serverPEM: try directory.write(server, to: "server.pem"),
            clientCertificate: directory.file("client.crt"),
            clientKey: directory.file("client.key"))
    }
}

// MARK: - A client program with a stdin

/// A program whose stdin the test writes to (ManagedProcess gives /dev/null), with
/// stdout and stderr in files. Stopped by PID (SIGTERM, then SIGKILL) in ``stop()``
/// or when dropped.
final class InteropPipedProcess {
    private let process = Process()
    private let input = Pipe()
    private let stdoutPath: String
    private let stderrPath: String
    private let name: String

    init(program: String, arguments: [String], directory: TemporaryDirectory) throws {
        let path: String
        do {
            path = try ManagedProcess.resolveExecutable(program)
        } catch {
            throw FixtureError("\(program) is needed by this test but is not installed (\(error))")
        }
        self.name = program
        let stamp = UUID().uuidString.prefix(6)
        self.stdoutPath = directory.file("\(program)-\(stamp).stdout.log")
        self.stderrPath = directory.file("\(program)-\(stamp).stderr.log")
        _ = FileManager.default.createFile(atPath: self.stdoutPath, contents: nil)
        _ = FileManager.default.createFile(atPath: self.stderrPath, contents: nil)
        self.process.executableURL = URL(fileURLWithPath: path)
        self.process.arguments = arguments
        self.process.standardInput = self.input
        self.process.standardOutput = FileHandle(forWritingAtPath: self.stdoutPath)
        self.process.standardError = FileHandle(forWritingAtPath: self.stderrPath)
        try self.process.run()
    }

    deinit {
        self.stop()
    }

    var standardOutput: [UInt8] { Array(FileManager.default.contents(atPath: self.stdoutPath) ?? Data()) }

    var standardError: String {
        String(decoding: FileManager.default.contents(atPath: self.stderrPath) ?? Data(), as: UTF8.self)
    }

    /// The program could not bind the source address it was given: the port picked
    /// as free was taken by another socket before it started (the kernel also hands
    /// such ports out as ephemeral ports to the other tests' connections).
    struct AddressInUse: Error, CustomStringConvertible {
        let description: String
    }

    func send(_ bytes: [UInt8]) throws {
        try self.input.fileHandleForWriting.write(contentsOf: Data(bytes))
    }

    /// Waits until stdout, from byte `start` on, contains `marker`; returns those
    /// bytes up to and including it.
    /// `timeout` only bounds a failure: under ThreadSanitizer, with the whole suite
    /// running beside it, a handshake through HAProxy and nethost took over 10 s once.
    func waitForOutput(containing marker: [UInt8], after start: Int = 0, timeout: Duration = .seconds(30)) async throws
        -> [UInt8]
    {
        var exited = false
        let found = try await poll(timeout: timeout) { () -> [UInt8]? in
            let running = self.process.isRunning
            let output = self.standardOutput
            let tail = output.count > start ? Array(output[start...]) : []
            if let end = tail.endOfFirst(marker) { return Array(tail[..<end]) }
            // Gone without it: waiting longer cannot help.
            if !running { exited = true; return [] }
            return nil
        }
        if exited, self.standardError.contains("Address already in use") {
            throw AddressInUse(description: "\(self.name) could not bind its source address: \(tail(self.standardError))")
        }
        guard let found, !exited else {
            throw FixtureError(
                "\(self.name) (pid \(self.process.processIdentifier)) printed no \(printable(marker)) in \(timeout)"
                    + "; stdout: \(printable(Array(self.standardOutput.prefix(2000))))\n  stderr:\n\(tail(self.standardError))")
        }
        return found
    }

    /// Closes its stdin and gives it `timeout` to exit by itself, then SIGKILL to its
    /// PID (not SIGTERM: `terminate()` was seen not to stop an `openssl s_client`
    /// started this way within 5 s); waits for it. Safe to call twice.
    func stop(timeout: Duration = .seconds(3)) {
        try? self.input.fileHandleForWriting.close()
        guard self.process.isRunning else { return }
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while self.process.isRunning, ContinuousClock.now < deadline { usleep(5_000) }
        if self.process.isRunning { kill(self.process.processIdentifier, SIGKILL) }
        self.process.waitUntilExit()
    }
}

extension Array where Element == UInt8 {
    /// The end index of the first occurrence of `pattern`, or nil.
    fileprivate func endOfFirst(_ pattern: [UInt8]) -> Int? {
        guard !pattern.isEmpty, pattern.count <= self.count else { return nil }
        for start in 0...(self.count - pattern.count) where self[start..<start + pattern.count].elementsEqual(pattern) {
            return start + pattern.count
        }
        return nil
    }
}

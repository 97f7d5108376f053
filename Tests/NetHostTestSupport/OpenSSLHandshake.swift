import Foundation

/// One `openssl s_client` handshake against a port on 127.0.0.1: it connects,
/// completes (or fails) the handshake, reads end of input on its stdin and
/// closes, so it needs no timing. What it printed tells the outcome, the
/// protocol and cipher agreed, and the server certificate's subject.
public struct OpenSSLHandshake: CustomStringConvertible {
    public let status: Int32
    public let output: String

    /// Runs `openssl s_client -connect 127.0.0.1:PORT` with `arguments`
    /// ("-tls1_2", "-servername", "example.com", ...), killed after 10 s at most.
    public static func run(port: Int, _ arguments: [String] = []) throws -> OpenSSLHandshake {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
        process.arguments = ["-s", "KILL", "10", "openssl", "s_client", "-connect", "127.0.0.1:\(port)"] + arguments
        process.environment = ["PATH": "/usr/bin:/bin"]
        let output = Pipe()
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let bytes = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return OpenSSLHandshake(status: process.terminationStatus, output: String(decoding: bytes, as: UTF8.self))
    }

    /// The line "New, TLSv1.2, Cipher is ECDHE-RSA-AES128-GCM-SHA256", split.
    private var session: (protocol: String, cipher: String)? {
        guard let line = output.split(separator: "\n").first(where: { $0.hasPrefix("New, ") }) else { return nil }
        let parts = line.dropFirst(5).components(separatedBy: ", Cipher is ")
        guard parts.count == 2, parts[0] != "(NONE)" else { return nil }
        return (parts[0], parts[1])
    }

    /// Whether the handshake completed.
    public var succeeded: Bool { status == 0 && session != nil }
    /// "TLSv1.2", "TLSv1.3".
    public var negotiatedProtocol: String? { session?.protocol }
    public var cipher: String? { session?.cipher }
    /// The server certificate's subject as openssl prints it: "CN = example.com".
    public var subject: String? {
        output.split(separator: "\n").first { $0.hasPrefix("subject=") }.map { String($0.dropFirst("subject=".count)) }
    }

    public var description: String { "openssl s_client exited \(status):\n\(output)" }

    /// Arguments that let the client itself offer TLS 1.0 and 1.1 (OpenSSL 3
    /// refuses them at its default security level), so a refusal is the server's.
    public static let allowOldProtocols = ["-cipher", "DEFAULT@SECLEVEL=0"]
}

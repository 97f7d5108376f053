import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

/// A TLS client for tests, on NIO: it can send plain bytes first (a PROXY
/// header) and then speak TLS on the same connection, as a load balancer does.
public final class TLSTestClient: Sendable {
    private let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
    private let group: MultiThreadedEventLoopGroup

    /// Connects; `preamble` goes out in clear before the TLS handshake starts.
    public static func connect(host: String, port: Int, preamble: [UInt8] = [], serverName: String? = nil) async throws -> TLSTestClient {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = .none
        let context = try NIOSSLContext(configuration: configuration)
        let channel = try await ClientBootstrap(group: group).connect(host: host, port: port) { channel in
            channel.eventLoop.makeCompletedFuture {
                if !preamble.isEmpty {
                    // Written before the TLS stage exists, so it reaches the socket in clear.
                    channel.writeAndFlush(channel.allocator.buffer(bytes: preamble), promise: nil)
                }
                try channel.pipeline.syncOperations.addHandler(
                    try NIOSSLClientHandler(context: context, serverHostname: serverName)
                )
                return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
            }
        }
        return TLSTestClient(channel: channel, group: group)
    }

    private init(channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>, group: MultiThreadedEventLoopGroup) {
        self.channel = channel
        self.group = group
    }

    /// Sends `text`, then collects what arrives until `terminator` has been seen or the server closes.
    public func exchange(_ text: String, until terminator: String, timeout: Duration = .seconds(5)) async throws -> String {
        try await channel.executeThenClose { inbound, outbound in
            if !text.isEmpty {
                try await outbound.write(ByteBuffer(string: text))
            }
            return try await withThrowingTaskGroup(of: String.self) { group in
                group.addTask {
                    var received = ""
                    for try await chunk in inbound {
                        received += String(buffer: chunk)
                        if received.contains(terminator) { break }
                    }
                    return received
                }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    throw CancellationError()
                }
                let result = try await group.next() ?? ""
                group.cancelAll()
                return result
            }
        }
    }

    public func shutdown() async {
        try? await group.shutdownGracefully()
    }
}

/// A throwaway self-signed certificate made with the `openssl` command, written to
/// `NAME.crt` and `NAME.key` in `directory` (over files already there).
///
/// Made once per test process for each common name, file name and validity, and
/// copied after that; and every certificate has the same private key, made once:
/// making an RSA key takes `openssl` up to a second, and dozens of tests each ask
/// for a certificate while holding one of the few threads the tests share. A
/// different common name, name or `days` is a different certificate.
public struct TestCertificate {
    public let certificatePath: String
    public let keyPath: String

    private struct Key: Hashable {
        let commonName: String
        let name: String
        let days: Int
    }
    private static let made = NIOLockedValueBox<[Key: (certificate: Data, key: Data)]>([:])
    private static let sharedKey = NIOLockedValueBox<Data?>(nil)

    /// `days`: how long it is valid from now. The default is past the 14 days within
    /// which NetHost warns that a certificate expires soon. `ownKey`: a key of its own
    /// (made now, not kept), where a test needs keys that differ.
    public init(
        in directory: String, commonName: String = "localhost", name: String = "test", days: Int = 30, ownKey: Bool = false
    ) throws {
        certificatePath = directory + "/\(name).crt"
        keyPath = directory + "/\(name).key"
        if ownKey {
            try Self.make(commonName: commonName, days: days, certificatePath: certificatePath, keyPath: keyPath, ownKey: true)
            return
        }
        let key = Key(commonName: commonName, name: name, days: days)
        if let made = Self.made.withLockedValue({ $0[key] }) {
            try made.certificate.write(to: URL(fileURLWithPath: certificatePath))
            try made.key.write(to: URL(fileURLWithPath: keyPath))
            return
        }
        try Self.make(commonName: commonName, days: days, certificatePath: certificatePath, keyPath: keyPath)
        let certificate = try Data(contentsOf: URL(fileURLWithPath: certificatePath))
        let keyData = try Data(contentsOf: URL(fileURLWithPath: keyPath))
        Self.made.withLockedValue { $0[key] = (certificate, keyData) }
    }

    private static func make(commonName: String, days: Int, certificatePath: String, keyPath: String, ownKey: Bool = false) throws {
        let key: [String]
        if !ownKey, let shared = sharedKey.withLockedValue({ $0 }) {
            try shared.write(to: URL(fileURLWithPath: keyPath))
            key = ["-key", keyPath]
        } else {
            key = ["-newkey", "rsa:2048", "-nodes", "-keyout", keyPath]
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = ["req", "-x509"] + key + [
            "-days", "\(days)", "-subj", "/CN=\(commonName)", "-out", certificatePath,
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw FixtureError("openssl could not make a test certificate (is the openssl package installed?)")
        }
        guard !ownKey else { return }
        let made = try Data(contentsOf: URL(fileURLWithPath: keyPath))
        sharedKey.withLockedValue { if $0 == nil { $0 = made } }
    }
}

import NIOSSL

/// The certificate NetHost serves TLS with, from Prosody's `ssl` option:
/// `ssl = { certificate = "certs/example.crt", key = "certs/example.key" }`.
/// Used by services with `encryption = "ssl"` (direct TLS, also after a PROXY
/// header) and by `conn:starttls()`. A class: every connection keeps a reference
/// to it, one word rather than a copy of its fields.
public final class TLSSettings: Sendable {
    public let certificatePath: String
    public let keyPath: String
    public let context: NIOSSLContext

    public struct Problem: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// Reads `ssl` (relative paths against `baseDirectory`) and loads the files;
    /// nil when the option is not set.
    public static func load(from value: ConfigValue?, option: String = "ssl", baseDirectory: String) throws(Problem) -> TLSSettings? {
        guard let value else { return nil }
        guard let table = value.tableValue else {
            throw Problem(description: "\(option): expected a table like { certificate = \"x.crt\", key = \"x.key\" }")
        }
        guard let certificate = table["certificate"]?.stringValue, let key = table["key"]?.stringValue else {
            throw Problem(description: "\(option): needs both certificate and key (file paths)")
        }
        let resolve = { (path: String) in path.hasPrefix("/") ? path : baseDirectory + "/" + path }
        let certificatePath = resolve(certificate)
        let keyPath = resolve(key)
        do {
            let chain = try NIOSSLCertificate.fromPEMFile(certificatePath).map { NIOSSLCertificateSource.certificate($0) }
            let configuration = TLSConfiguration.makeServerConfiguration(
                certificateChain: chain,
                privateKey: .privateKey(try NIOSSLPrivateKey(file: keyPath, format: .pem))
            )
            return TLSSettings(certificatePath: certificatePath, keyPath: keyPath, context: try NIOSSLContext(configuration: configuration))
        } catch {
            throw Problem(description: "\(option): could not load \(certificatePath) and \(keyPath): \(error)")
        }
    }

    private init(certificatePath: String, keyPath: String, context: NIOSSLContext) {
        self.certificatePath = certificatePath
        self.keyPath = keyPath
        self.context = context
    }

    /// A new server-side TLS stage for one connection.
    public func makeHandler() -> NIOSSLServerHandler {
        NIOSSLServerHandler(context: context)
    }
}

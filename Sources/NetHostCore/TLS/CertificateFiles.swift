import NetHostConfig
import NIOSSL
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A certificate chain and its private key, read from PEM files, with what a log
/// line needs to say which certificate is served.
public struct LoadedCertificate: Sendable {
    public let certificatePath: String
    public let keyPath: String
    public let chain: [NIOSSLCertificate]
    public let key: NIOSSLPrivateKey

    /// The first certificate's subject, "CN=example.com, O=Example".
    public var subject: String {
        guard let first = chain.first else { return "" }
        return first.subjectName.map { "\(Self.label($0.type))=\($0.value)" }.joined(separator: ", ")
    }

    /// When the first certificate expires (seconds since 1970).
    public var notValidAfter: Int { chain.first.map { Int($0.notValidAfter) } ?? 0 }
    public var notValidBefore: Int { chain.first.map { Int($0.notValidBefore) } ?? 0 }

    /// "/etc/nethost/certs/example.com.crt (CN=example.com, valid until 2026-05-01)".
    public var summary: String {
        "\(certificatePath) (\(subject.isEmpty ? "no subject" : subject), valid until \(Self.date(notValidAfter)))"
    }

    /// A warning when the certificate is expired or not yet valid at `now`; clients
    /// that check it will refuse the handshake, so it deserves a line in the log.
    public func validityNote(now: Int) -> String? {
        switch validity(now: now) {
        case .expired(let end):
            "certificate \(certificatePath) (\(subject)) expired on \(Self.date(end)); clients will refuse it"
        case .notYetValid(let start):
            "certificate \(certificatePath) (\(subject)) is not valid before \(Self.date(start)); clients will refuse it"
        case .expiresSoon, .valid:
            nil
        }
    }

    /// Where `now` falls in the first certificate's validity period (`CertificateValidity`).
    public func validity(now: Int, margin: Int = CertificateValidity.renewalMargin) -> CertificateValidity {
        CertificateValidity(notValidBefore: notValidBefore, notValidAfter: notValidAfter, now: now, margin: margin)
    }

    private static func label(_ type: SSLCertificateNameType) -> String {
        switch type {
        case .commonName: "CN"
        case .organization: "O"
        case .organizationalUnit: "OU"
        case .country: "C"
        case .state: "ST"
        case .city: "L"
        case .emailAddress: "emailAddress"
        default: "UID"
        }
    }

    /// "2026-05-01", UTC.
    static func date(_ seconds: Int) -> String {
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        let year = Int(parts.tm_year) + 1900, month = Int(parts.tm_mon) + 1, day = Int(parts.tm_mday)
        return "\(year)-\(month < 10 ? "0" : "")\(month)-\(day < 10 ? "0" : "")\(day)"
    }
}

/// Why a certificate or key file cannot be used, naming the file and what is wrong
/// with it in words (swift-nio-ssl says only `failedToLoadCertificate`).
public struct CertificateFileError: Error, CustomStringConvertible, Sendable, Equatable {
    public let description: String
    init(_ description: String) { self.description = description }
}

extension LoadedCertificate {
    /// Reads `certificatePath` and `keyPath` (PEM; one file may hold both) and checks
    /// that the key belongs to the certificate. `password` decrypts an encrypted key.
    public static func load(certificate certificatePath: String, key keyPath: String, password: String? = nil)
        throws(CertificateFileError) -> LoadedCertificate
    {
        let certificateBytes = try readFile(certificatePath, what: "certificate file")
        let chain = try parseCertificates(certificateBytes, path: certificatePath)
        let keyBytes = keyPath == certificatePath ? certificateBytes : try readFile(keyPath, what: "key file")
        let key = try parseKey(keyBytes, path: keyPath, password: password)
        // BoringSSL compares the key with the certificate when both go into a context.
        do {
            _ = try NIOSSLContext(configuration: .makeServerConfiguration(
                certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key)
            ))
        } catch {
            throw CertificateFileError("the key in \(keyPath) does not belong to the certificate in \(certificatePath) "
                + "(\(LoadedCertificate(certificatePath: certificatePath, keyPath: keyPath, chain: chain, key: key).subject)): "
                + "their public keys differ; was one of them renewed without the other?")
        }
        return LoadedCertificate(certificatePath: certificatePath, keyPath: keyPath, chain: chain, key: key)
    }

    /// CA certificates for checking client certificates (`cafile`).
    public static func loadAuthorities(_ path: String) throws(CertificateFileError) -> [NIOSSLCertificate] {
        try parseCertificates(try readFile(path, what: "CA file"), path: path)
    }

    private static let pemCertificate = Array("-----BEGIN CERTIFICATE-----".utf8)
    private static let pemPrivateKey = Array("PRIVATE KEY-----".utf8)

    private static func parseCertificates(_ bytes: [UInt8], path: String) throws(CertificateFileError) -> [NIOSSLCertificate] {
        guard bytes.contains(subsequence: pemCertificate) else {
            if bytes.contains(subsequence: pemPrivateKey) {
                throw CertificateFileError("\(path) holds a private key, not a certificate: are certificate and key swapped?")
            }
            if bytes.first == 0x30 {
                throw CertificateFileError("\(path) is not in PEM form (it looks like DER); NetHost reads PEM, as Prosody does: "
                    + "convert it with openssl x509 -inform der -in \(path) -out \(path).pem")
            }
            throw CertificateFileError("\(path) is not a PEM certificate: it has no \"-----BEGIN CERTIFICATE-----\" line")
        }
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMBytes(bytes)
        } catch {
            throw CertificateFileError("\(path) has a \"-----BEGIN CERTIFICATE-----\" block that is not a valid certificate (damaged or cut short?)")
        }
        guard !chain.isEmpty else {
            throw CertificateFileError("\(path) has no complete certificate (damaged or cut short?)")
        }
        return chain
    }

    private static func parseKey(_ bytes: [UInt8], path: String, password: String?) throws(CertificateFileError) -> NIOSSLPrivateKey {
        guard bytes.contains(subsequence: pemPrivateKey) else {
            if bytes.contains(subsequence: pemCertificate) {
                throw CertificateFileError("\(path) holds a certificate, not a private key: are certificate and key swapped?")
            }
            throw CertificateFileError("\(path) is not a PEM private key: it has no \"-----BEGIN ... PRIVATE KEY-----\" line")
        }
        let encrypted = bytes.contains(subsequence: Array("ENCRYPTED".utf8))
        if encrypted, password == nil {
            throw CertificateFileError("\(path) is encrypted with a passphrase: set ssl.password, or store the key without one "
                + "(openssl pkey -in \(path) -out \(path).plain)")
        }
        do {
            // Always with a callback: without one BoringSSL would ask on the terminal.
            let secret = Array((password ?? "").utf8)
            return try NIOSSLPrivateKey(bytes: bytes, format: .pem) { (setter: NIOSSLPassphraseSetter<[UInt8]>) in
                setter(secret)
            }
        } catch {
            if encrypted {
                throw CertificateFileError("\(path) could not be decrypted with ssl.password (wrong passphrase?)")
            }
            throw CertificateFileError("\(path) has a \"PRIVATE KEY\" block that is not a valid key (damaged or cut short?)")
        }
    }

    /// The most a certificate or key file may hold.
    static let sizeLimit = 1 << 20

    /// The file's bytes, or an error that says in words why they cannot be had.
    static func readFile(_ path: String, what: String) throws(CertificateFileError) -> [UInt8] {
        var info = stat()
        guard stat(path, &info) == 0 else {
            let code = errno
            switch code {
            case ENOENT: throw CertificateFileError("\(what) \(path) does not exist")
            case EACCES: throw CertificateFileError("\(what) \(path) cannot be reached: permission denied on one of its folders")
            default: throw CertificateFileError("\(what) \(path) cannot be read: \(errorText(code))")
            }
        }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            throw CertificateFileError("\(what) \(path) is a folder, not a file")
        }
        let bytes: [UInt8]
        do {
            bytes = try ConfigFiles.read(path)
        } catch {
            if error.description == errorText(EACCES) {
                throw CertificateFileError("\(what) \(path) cannot be read by this process (permission denied): check its owner and mode")
            }
            throw CertificateFileError("\(what) \(path) cannot be read: \(error)")
        }
        guard bytes.count <= sizeLimit else {
            throw CertificateFileError("\(what) \(path) is larger than 1 MiB; is it the right file?")
        }
        guard !bytes.isEmpty else { throw CertificateFileError("\(what) \(path) is empty") }
        return bytes
    }

    private static func errorText(_ code: Int32) -> String {
        guard let text = strerror(code) else { return "error \(code)" }
        return String(cString: text)
    }
}

extension Array where Element == UInt8 {
    /// Whether `pattern` occurs in the bytes.
    fileprivate func contains(subsequence pattern: [UInt8]) -> Bool {
        guard !pattern.isEmpty, pattern.count <= count else { return false }
        let first = pattern[0]
        var index = startIndex
        while let start = self[index...].firstIndex(of: first) {
            if start + pattern.count > endIndex { return false }
            if self[start ..< start + pattern.count].elementsEqual(pattern) { return true }
            index = start + 1
        }
        return false
    }
}

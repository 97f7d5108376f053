#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Finds a certificate and key for a name (a host or a service) in a folder, by file
/// name, as Prosody's certmanager `find_cert` does with `certificates = "certs"`:
/// `NAME.crt` with `NAME.key`, `NAME/fullchain.pem` with `NAME/privkey.pem` (the
/// layout of Let's Encrypt's `live` folder), or `NAME.pem` holding both. The
/// location may also name a file, as a host's `certificate` option can; then its
/// key is beside it. A host without files of its own uses its parent domain's
/// (conference.example.com takes example.com's).
///
/// Prosody 0.12 also indexes the names inside the certificates of the folder;
/// NetHost goes by file names only (what `prosodyctl cert import` writes).
public struct CertificateLocator: Sendable {
    /// The certificate and key files found.
    public struct Found: Sendable, Equatable {
        public let certificate: String
        public let key: String
    }

    /// Whether a path is an existing regular file (replaceable in tests).
    let isFile: @Sendable (String) -> Bool

    public init() {
        self.isFile = { path in
            var info = stat()
            return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG
        }
    }

    /// Whether `path` is an existing folder.
    public static func isFolder(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    init(isFile: @escaping @Sendable (String) -> Bool) {
        self.isFile = isFile
    }

    /// The files for `name` in `location` (a folder, or a certificate file), or nil.
    public func find(in location: String, name: String) -> Found? {
        let candidates: [(String, String)] = [
            ("", ""),
            ("/\(name).crt", "/\(name).key"),
            ("/\(name)/fullchain.pem", "/\(name)/privkey.pem"),
            ("/\(name).pem", "/\(name).pem"),
        ]
        for (certificateSuffix, keySuffix) in candidates {
            let certificate = location + certificateSuffix
            var key = location + keySuffix
            guard isFile(certificate) else { continue }
            if certificate == key {
                if key.hasSuffix(".crt") {
                    key = String(key.dropLast(3)) + "key"
                } else if key.hasSuffix("/fullchain.pem") {
                    key = String(key.dropLast("fullchain.pem".count)) + "privkey.pem"
                }
            }
            if isFile(key) { return Found(certificate: certificate, key: key) }
        }
        return nil
    }

    /// The files for host `name`, else for its parent domains, as Prosody's `find_host_cert`.
    public func find(in location: String, host name: String) -> Found? {
        var name = Substring(name)
        while !name.isEmpty {
            if let found = find(in: location, name: String(name)) { return found }
            guard let dot = name.firstIndex(of: ".") else { return nil }
            name = name[name.index(after: dot)...]
            // Not a bare top-level domain: "com.crt" is nobody's certificate.
            guard name.contains(".") else { return nil }
        }
        return nil
    }
}

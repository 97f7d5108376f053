import Foundation
import NIOSSL

/// A TLS error in words. swift-nio-ssl reports BoringSSL's error stack, whose text
/// ends in a build path ("... at /…/checkouts/swift-nio-ssl/…/s3_both.cc:485");
/// what an operator, a log and `ondisconnect` need is the reason, said plainly.
public struct TLSFailure: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// The handshake failed; `reason` is BoringSSL's reason code ("NO_SHARED_CIPHER").
        case handshake(reason: String)
        /// The peer closed in the middle of the handshake.
        case closedDuringHandshake
        /// An error after the handshake (an unclean shutdown, a bad record).
        case afterHandshake(String)
    }

    public let kind: Kind

    /// Reads a swift-nio-ssl error; nil for errors that are not about TLS.
    public init?(_ error: any Error) {
        if let error = error as? NIOSSLError {
            switch error {
            case .handshakeFailed(let inner):
                let reason = Self.reasonCode(inner)
                self.kind = reason == "EOF" ? .closedDuringHandshake : .handshake(reason: reason)
            case .uncleanShutdown:
                self.kind = .afterHandshake("the peer closed the TLS connection without a close_notify alert")
            default:
                self.kind = .afterHandshake(Self.words(for: error))
            }
            return
        }
        if let error = error as? BoringSSLError {
            self.kind = .afterHandshake(Self.words(forReason: Self.reasonCode(error)))
            return
        }
        return nil
    }

    /// Whether the handshake failed (as opposed to a later TLS error).
    public var isHandshakeFailure: Bool {
        if case .afterHandshake = kind { return false }
        return true
    }

    /// What `ondisconnect` is told and the log says: "TLS handshake failed: ...".
    /// `allowed` names the versions the server speaks, for a version mismatch.
    public func reason(allowed: ClosedRange<TLSOptions.Version>? = nil) -> String {
        switch kind {
        case .handshake(let code):
            if code == "UNSUPPORTED_PROTOCOL", let allowed {
                return "TLS handshake failed: the client offers no TLS version NetHost accepts (\(TLSOptions.describe(allowed)))"
            }
            return "TLS handshake failed: \(Self.words(forReason: code))"
        case .closedDuringHandshake:
            return "TLS handshake failed: the client closed the connection during the handshake"
        case .afterHandshake(let words):
            return "TLS error: \(words)"
        }
    }

    /// BoringSSL's reason code from an error stack; "EOF" for the end of input.
    static func reasonCode(_ error: BoringSSLError) -> String {
        switch error {
        case .sslError(let stack), .unknownError(let stack), .invalidSNIName(let stack), .failedToSetALPN(let stack):
            for entry in stack {
                if let code = reasonCode(entry) { return code }
            }
            return "UNKNOWN"
        case .zeroReturn, .syscallError:
            return "EOF"
        default:
            return "\(error)".uppercased()
        }
    }

    /// "Error: 268435638 error:100000b6:SSL routines:OPENSSL_internal:NO_SHARED_CIPHER at /…:485"
    /// gives "NO_SHARED_CIPHER"; the synthetic "EOF during handshake" gives "EOF".
    static func reasonCode(_ entry: BoringSSLInternalError) -> String? {
        let text = entry.description
        if text.contains("EOF during") { return "EOF" }
        guard let start = text.range(of: "error:") else { return nil }
        var body = text[start.upperBound...]
        if let end = body.range(of: " at ") { body = body[..<end.lowerBound] }
        guard let last = body.split(separator: ":").last, !last.isEmpty else { return nil }
        return String(last)
    }

    /// A reason code in words.
    static func words(forReason code: String) -> String {
        switch code {
        case "UNSUPPORTED_PROTOCOL":
            return "the client offers no TLS version NetHost accepts"
        case "NO_SHARED_CIPHER":
            return "no cipher in common with the client (it offers only ciphers NetHost does not accept)"
        case "NO_SHARED_GROUP":
            return "no key exchange curve in common with the client"
        case "HTTP_REQUEST", "HTTPS_PROXY_REQUEST":
            return "the client sent a plain HTTP request, not a TLS handshake"
        case "WRONG_VERSION_NUMBER", "UNEXPECTED_RECORD", "BAD_PACKET_LENGTH", "UNKNOWN_PROTOCOL", "RECORD_TOO_LARGE":
            return "the client did not start a TLS handshake (plain text or another protocol?)"
        case "PEER_DID_NOT_RETURN_A_CERTIFICATE":
            return "the client sent no certificate, and one is required (verify)"
        case "CERTIFICATE_VERIFY_FAILED":
            return "the client's certificate did not verify against the trusted CAs (cafile/capath)"
        case "EOF":
            return "the client closed the connection during the handshake"
        default:
            break
        }
        for prefix in ["TLSV1_ALERT_", "SSLV3_ALERT_"] where code.hasPrefix(prefix) {
            let alert = spaced(String(code.dropFirst(prefix.count)))
            switch alert {
            case "unknown ca", "bad certificate", "certificate unknown":
                return "the client refused NetHost's certificate (alert: \(alert)); it does not trust it or it does not name the host"
            case "protocol version":
                return "the client refused every TLS version NetHost offers (alert: protocol version)"
            default:
                return "the client ended the handshake with the alert \"\(alert)\""
            }
        }
        return spaced(code)
    }

    /// "NO_SHARED_CIPHER" as "no shared cipher".
    private static func spaced(_ code: String) -> String {
        String(code.lowercased().map { $0 == "_" ? " " : $0 })
    }

    /// Any error of the TLS library in words, without build paths.
    static func words(for error: any Error) -> String {
        switch error {
        case let error as NIOSSLError:
            switch error {
            case .handshakeFailed(let inner), .shutdownFailed(let inner):
                return words(forReason: reasonCode(inner))
            case .failedToLoadCertificate: return "a certificate could not be loaded"
            case .failedToLoadPrivateKey: return "the private key could not be loaded or does not match the certificate"
            case .noSuchFilesystemObject: return "a file or folder named in the settings does not exist"
            case .uncleanShutdown: return "the peer closed the TLS connection without a close_notify alert"
            default: return "\(error)"
            }
        case let error as BoringSSLError:
            return words(forReason: reasonCode(error))
        default:
            return "\(error)"
        }
    }
}

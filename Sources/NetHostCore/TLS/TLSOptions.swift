/// What one TLS context is made of, as NetHost reads it from Prosody's options:
/// Mozilla's profile (`tls_profile`, "intermediate" unless set), then the global
/// `ssl` table, then the service's `NAME_ssl`, each key of a later one replacing
/// the earlier (`options` add up), as Prosody's certmanager merges them. A plain
/// value: reading the tables (`TLSOptions+Prosody.swift`) and turning the result
/// into a swift-nio-ssl context (`TLSSettings`) live apart.
public struct TLSOptions: Sendable, Equatable {
    /// The TLS versions NetHost can speak (BoringSSL has no SSL 2 or 3).
    public enum Version: Int, Sendable, Comparable, CaseIterable, CustomStringConvertible {
        case tls1_0, tls1_1, tls1_2, tls1_3

        public static func < (lhs: Version, rhs: Version) -> Bool { lhs.rawValue < rhs.rawValue }

        public var description: String {
            switch self {
            case .tls1_0: "TLS 1.0"
            case .tls1_1: "TLS 1.1"
            case .tls1_2: "TLS 1.2"
            case .tls1_3: "TLS 1.3"
            }
        }

        /// The name in Prosody's `protocol` and `options` (`no_tlsv1_1`).
        public var prosodyName: String {
            switch self {
            case .tls1_0: "tlsv1"
            case .tls1_1: "tlsv1_1"
            case .tls1_2: "tlsv1_2"
            case .tls1_3: "tlsv1_3"
            }
        }
    }

    /// Prosody's `protocol`: one version ("tlsv1_2"), or one and later ("tlsv1_2+", "sslv23").
    public enum ProtocolSetting: Sendable, Equatable {
        case only(Version)
        case atLeast(Version)

        var versions: ClosedRange<Version> {
            switch self {
            case .only(let version): version...version
            case .atLeast(let version): version...Version.tls1_3
            }
        }
    }

    /// Prosody's `verify`: whether clients are asked for a certificate.
    public enum ClientCertificates: Sendable, Equatable {
        /// "none" (Prosody's default): no certificate is asked for.
        case notRequested
        /// "peer": asked for; one presented must verify against `cafile`/`capath`.
        case verifiedIfPresented
        /// { "peer", "fail_if_no_peer_cert" }: a client without a valid certificate is refused.
        case required
    }

    /// Key exchange groups, by the names Prosody's `curve` and `curveslist` use.
    public enum Curve: String, Sendable, Equatable, CaseIterable {
        case x25519 = "X25519"
        case p256 = "P-256"
        case p384 = "P-384"
        case p521 = "P-521"
        case x25519MLKEM768 = "X25519MLKEM768"
    }

    /// Certificate file (PEM, absolute path).
    public var certificate: String?
    /// Private key file (PEM, absolute path).
    public var key: String?
    /// Passphrase of an encrypted key (Prosody's `password`).
    public var password: String?
    /// The versions clients may use.
    public var versions: ClosedRange<Version>
    /// Ciphers for TLS 1.2 and earlier.
    public var ciphers: CipherRule
    /// Key exchange groups; nil for BoringSSL's own choice (X25519, P-256, P-384).
    public var curves: [Curve]?
    /// CA certificates that client certificates are checked against.
    public var caFile: String?
    public var caPath: String?
    public var clientCertificates: ClientCertificates

    public struct Problem: Error, CustomStringConvertible, Sendable, Equatable {
        public let description: String
        public init(_ description: String) { self.description = description }
    }
}

extension TLSOptions {
    /// Mozilla's server-side TLS profiles as Prosody 0.12 ships them
    /// (`mozilla_ssl_configs` in core/certmanager.lua), with the ciphers BoringSSL
    /// has (no DHE). "legacy" is Prosody's own defaults before profiles existed.
    public enum Profile: String, Sendable, CaseIterable {
        case modern, intermediate, old, legacy

        /// TLS 1.2 ciphers of the intermediate profile that BoringSSL offers: forward secrecy only.
        public static let intermediateCiphers = [
            "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
            "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
            "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
        ].joined(separator: ":")

        static let oldCiphers = [
            intermediateCiphers,
            "ECDHE-ECDSA-AES128-SHA256", "ECDHE-RSA-AES128-SHA256", "ECDHE-ECDSA-AES128-SHA", "ECDHE-RSA-AES128-SHA",
            "ECDHE-ECDSA-AES256-SHA", "ECDHE-RSA-AES256-SHA", "AES128-GCM-SHA256", "AES256-GCM-SHA384",
            "AES128-SHA", "AES256-SHA", "DES-CBC3-SHA",
        ].joined(separator: ":")

        static let legacyCiphers = "HIGH+kEECDH:HIGH+kEDH:HIGH:!PSK:!SRP:!3DES:!aNULL"

        /// The profile as the first layer of settings.
        public var layer: Layer {
            switch self {
            case .modern:
                Layer(protocolSetting: .atLeast(.tls1_3), ciphers: Self.rule(Self.intermediateCiphers))
            case .intermediate:
                Layer(protocolSetting: .atLeast(.tls1_2), ciphers: Self.rule(Self.intermediateCiphers))
            case .old:
                Layer(protocolSetting: .atLeast(.tls1_0), ciphers: Self.rule(Self.oldCiphers))
            case .legacy:
                Layer(protocolSetting: .atLeast(.tls1_0), ciphers: Self.rule(Self.legacyCiphers))
            }
        }

        private static func rule(_ text: String) -> CipherRule {
            // The profiles' strings are NetHost's own and select ciphers by construction.
            guard let rule = try? CipherRule(text) else { preconditionFailure("profile cipher string '\(text)' selects nothing") }
            return rule
        }
    }

    /// One table of settings as written: the keys it sets, nil for the others.
    public struct Layer: Sendable, Equatable {
        public var certificate: String?
        public var key: String?
        public var password: String?
        public var protocolSetting: ProtocolSetting?
        public var ciphers: CipherRule?
        public var curves: [Curve]?
        public var caFile: String?
        public var caPath: String?
        public var clientCertificates: ClientCertificates?
        /// Prosody's `options` set: `no_tlsv1_1 = true` and the like.
        public var options: [String: Bool] = [:]

        public init(
            certificate: String? = nil, key: String? = nil, password: String? = nil,
            protocolSetting: ProtocolSetting? = nil, ciphers: CipherRule? = nil, curves: [Curve]? = nil,
            caFile: String? = nil, caPath: String? = nil, clientCertificates: ClientCertificates? = nil,
            options: [String: Bool] = [:]
        ) {
            self.certificate = certificate
            self.key = key
            self.password = password
            self.protocolSetting = protocolSetting
            self.ciphers = ciphers
            self.curves = curves
            self.caFile = caFile
            self.caPath = caPath
            self.clientCertificates = clientCertificates
            self.options = options
        }

        /// `other`'s keys over these, as Prosody's util.sslconfig applies a table.
        public func applying(_ other: Layer) -> Layer {
            var result = self
            result.certificate = other.certificate ?? certificate
            result.key = other.key ?? key
            result.password = other.password ?? password
            result.protocolSetting = other.protocolSetting ?? protocolSetting
            result.ciphers = other.ciphers ?? ciphers
            result.curves = other.curves ?? curves
            result.caFile = other.caFile ?? caFile
            result.caPath = other.caPath ?? caPath
            result.clientCertificates = other.clientCertificates ?? clientCertificates
            result.options.merge(other.options) { $1 }
            return result
        }
    }

    /// The settings that `layers` make, applied in order over `profile`.
    /// Throws when they leave no TLS version to speak.
    public init(profile: Profile = .intermediate, layers: [Layer]) throws(Problem) {
        let merged = layers.reduce(profile.layer) { $0.applying($1) }
        let range = (merged.protocolSetting ?? .atLeast(.tls1_2)).versions
        let allowed = Version.allCases.filter { range.contains($0) && merged.options["no_\($0.prosodyName)"] != true }
        guard let lowest = allowed.first, let highest = allowed.last else {
            let disabled = merged.options.filter { $0.value && $0.key.hasPrefix("no_tls") }.keys.sorted()
            throw Problem("protocol \(Self.describe(range)) with options \(disabled.joined(separator: ", ")) leaves no TLS version to speak")
        }
        certificate = merged.certificate
        key = merged.key
        password = merged.password
        versions = lowest...highest
        ciphers = merged.ciphers ?? profile.layer.ciphers!
        curves = merged.curves
        caFile = merged.caFile
        caPath = merged.caPath
        clientCertificates = merged.clientCertificates ?? .notRequested
    }

    /// "TLS 1.2 and 1.3", "TLS 1.3 only", "TLS 1.0 to 1.3".
    public static func describe(_ versions: ClosedRange<Version>) -> String {
        let low = versions.lowerBound, high = versions.upperBound
        if low == high { return "\(low) only" }
        let highNumber = String(high.description.dropFirst(4))
        return high.rawValue == low.rawValue + 1 ? "\(low) and \(highNumber)" : "\(low) to \(highNumber)"
    }

    /// What a log line says about these settings: "TLS 1.2 and 1.3, 6 ciphers for TLS 1.2".
    public var summary: String {
        var parts = [Self.describe(versions)]
        if versions.lowerBound <= .tls1_2 {
            parts.append("\(ciphers.ciphers.count) ciphers for TLS 1.2 and earlier")
        }
        if let curves { parts.append("curves \(curves.map(\.rawValue).joined(separator: ", "))") }
        switch clientCertificates {
        case .notRequested: break
        case .verifiedIfPresented: parts.append("client certificates verified if presented")
        case .required: parts.append("client certificates required")
        }
        return parts.joined(separator: ", ")
    }
}

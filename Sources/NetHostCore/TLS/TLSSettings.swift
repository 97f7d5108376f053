import NetHostLogging
import NIOCore
import NIOSSL

/// One TLS context, ready for connections: the settings (`TLSOptions`), the
/// certificate served by default and those served by name (SNI) for the config's
/// hosts, turned into a swift-nio-ssl context. Used by services with
/// `encryption = "ssl"` (direct TLS, also after a PROXY header) and by
/// `conn:starttls()`. A class: every connection keeps a reference to it, one word
/// rather than a copy of its fields; a reload makes a new one, and connections
/// that started with the old one keep it.
public final class TLSSettings: Sendable {
    public let options: TLSOptions
    /// Served when the client names no host, or one without a certificate of its own.
    public let certificate: LoadedCertificate
    /// Served to clients that name these hosts (lowercased) in their hello.
    public let hostCertificates: [String: LoadedCertificate]
    public let context: NIOSSLContext
    /// Failed handshakes, logged once per peer and then summarised.
    let handshakeFailures: RepeatedEventLog?
    /// The process's handshake timeout and rate limit; nil: neither (a context made
    /// alone, as in a test; `TLSContexts` always gives one).
    let handshakeLimits: TLSHandshakeLimits?

    public var certificatePath: String { certificate.certificatePath }
    public var keyPath: String { certificate.keyPath }

    public struct Problem: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    public init(
        options: TLSOptions,
        certificate: LoadedCertificate,
        hostCertificates: [String: LoadedCertificate] = [:],
        handshakeFailures: RepeatedEventLog? = nil,
        handshakeLimits: TLSHandshakeLimits? = nil
    ) throws(Problem) {
        self.options = options
        self.certificate = certificate
        self.hostCertificates = hostCertificates
        self.handshakeFailures = handshakeFailures
        self.handshakeLimits = handshakeLimits
        let configuration = try Self.configuration(options, certificate: certificate, hosts: hostCertificates)
        do {
            self.context = try NIOSSLContext(configuration: configuration)
        } catch {
            throw Problem(description: "the TLS library refused the settings: \(TLSFailure.words(for: error))")
        }
    }

    /// A new server-side TLS stage for one connection.
    public func makeHandler() -> NIOSSLServerHandler {
        NIOSSLServerHandler(context: context)
    }

    /// Adds the server side of TLS for one connection at `position`: the TLS stage,
    /// then the stage that closes the connection if its handshake outlasts
    /// `ssl_handshake_timeout`. Returns the last stage added, after which the
    /// service's own goes; or nil, having added nothing, when
    /// `ssl_max_handshakes_per_second` is reached (counted and logged): the caller
    /// then closes the connection, before any crypto is spent on it. Call on the
    /// channel's loop. `addresses`: the client as a proxy named it, if one did.
    public func addServerStages(
        to pipeline: ChannelPipeline.SynchronousOperations,
        position: ChannelPipeline.SynchronousOperations.Position,
        serviceName: String,
        addresses: ConnectionAddresses?
    ) throws -> (any ChannelHandler)? {
        guard let limits = handshakeLimits else {
            let tlsHandler = makeHandler()
            try pipeline.addHandler(tlsHandler, position: position)
            return tlsHandler
        }
        guard limits.admit(now: pipeline.eventLoop.now, client: addresses) else { return nil }
        let tlsHandler = makeHandler()
        let timeoutHandler = TLSHandshakeTimeoutHandler(
            limits: limits, timeout: limits.timeout, serviceName: serviceName, addresses: addresses
        )
        try pipeline.addHandler(tlsHandler, position: position)
        try pipeline.addHandler(timeoutHandler, position: .after(tlsHandler))
        return timeoutHandler
    }

    /// What `ondisconnect` is told when `addServerStages` refused a STARTTLS.
    public var refusalReason: String {
        handshakeLimits?.refusalReason ?? "TLS refused"
    }

    /// swift-nio-ssl's configuration for these settings. `makeServerConfiguration`
    /// alone would allow TLS 1.0 and ciphers without forward secrecy.
    static func configuration(
        _ options: TLSOptions, certificate: LoadedCertificate, hosts: [String: LoadedCertificate]
    ) throws(Problem) -> TLSConfiguration {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: certificate.chain.map { .certificate($0) },
            privateKey: .privateKey(certificate.key)
        )
        configuration.minimumTLSVersion = options.versions.lowerBound.nio
        configuration.maximumTLSVersion = options.versions.upperBound.nio
        // Exact names from the evaluated rule: BoringSSL accepts each of them, so
        // swift-nio-ssl's precondition on the cipher list cannot fire.
        configuration.cipherSuites = options.ciphers.openSSLString
        configuration.curves = options.curves?.map(\.nio)
        configuration.renegotiationSupport = .none
        switch options.clientCertificates {
        case .notRequested:
            configuration.certificateVerification = .none
        case .verifiedIfPresented:
            configuration.certificateVerification = .optionalVerification
        case .required:
            configuration.certificateVerification = .noHostnameVerification
        }
        if options.clientCertificates != .notRequested {
            var authorities: [NIOSSLCertificate] = []
            if let caFile = options.caFile {
                do {
                    authorities = try LoadedCertificate.loadAuthorities(caFile)
                } catch {
                    throw Problem(description: "cafile: \(error)")
                }
            }
            switch (options.caPath, authorities.isEmpty) {
            case (let path?, true):
                configuration.trustRoots = .file(path)
            case (let path?, false):
                configuration.trustRoots = .file(path)
                configuration.additionalTrustRoots = [.certificates(authorities)]
            case (nil, false):
                configuration.trustRoots = .certificates(authorities)
            case (nil, true):
                configuration.trustRoots = .default
            }
            configuration.sendCANameList = !authorities.isEmpty
        }
        if !hosts.isEmpty {
            // Pick the certificate by the name the client asks for, as Prosody does
            // for its hosts; names without one get the default certificate.
            configuration.sslContextCallback = { values, promise in
                guard let name = values.serverHostname?.lowercased(), let host = hosts[name] else {
                    promise.succeed(.noChanges)
                    return
                }
                var change = NIOSSLContextConfigurationOverride()
                change.certificateChain = host.chain.map { .certificate($0) }
                change.privateKey = .privateKey(host.key)
                promise.succeed(change)
            }
        }
        return configuration
    }

    /// For the log: what this context serves.
    public var summary: String {
        var text = "certificate \(certificate.summary); \(options.summary)"
        if !hostCertificates.isEmpty {
            let hosts = hostCertificates.keys.sorted().map { "\($0) (\(hostCertificates[$0]!.certificatePath))" }
            text += "; by name (SNI): " + hosts.joined(separator: ", ")
        }
        return text
    }
}

extension TLSOptions.Version {
    var nio: TLSVersion {
        switch self {
        case .tls1_0: .tlsv1
        case .tls1_1: .tlsv11
        case .tls1_2: .tlsv12
        case .tls1_3: .tlsv13
        }
    }
}

extension TLSOptions.Curve {
    var nio: NIOTLSCurve {
        switch self {
        case .x25519: .x25519
        case .p256: .secp256r1
        case .p384: .secp384r1
        case .p521: .secp521r1
        case .x25519MLKEM768: .x25519_MLKEM768
        }
    }
}

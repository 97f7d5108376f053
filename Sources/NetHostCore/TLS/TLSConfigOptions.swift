import NetHostConfig

/// The options `TLSContexts` reads: Prosody's TLS settings and certificates, and the
/// bounds on handshakes (`TLSHandshakeLimits`).
public enum TLSConfigOptions {
    public static let ssl = OptionDeclaration(
        "ssl", .shaped("table { certificate, key, protocol, ciphers, curve, cafile, verify, options, ... }"),
        help: "TLS settings for every TLS service (global), or the certificate a host is served with (under a VirtualHost)",
        reload: .newConnections
    )
    public static let certificates = OptionDeclaration(
        "certificates", .string, default: #""certs""#, scope: .global,
        help: "a folder searched for certificates by host and service name (relative to the config)",
        reload: .newConnections
    )
    public static let certificate = OptionDeclaration(
        "certificate", .string,
        help: "a certificate file or folder for the hosts (under a VirtualHost: for that host)",
        reload: .newConnections
    )
    public static let tlsProfile = OptionDeclaration(
        "tls_profile", .string, default: #""intermediate""#, scope: .global,
        help: "Mozilla's profile the defaults come from: modern, intermediate, old or legacy",
        reload: .newConnections
    )
    public static let handshakeTimeout = OptionDeclaration(
        "ssl_handshake_timeout", .seconds, default: "\(Int(TLSHandshakeLimits.defaultTimeout))", scope: .global,
        help: "seconds a TLS handshake may take before the connection is closed (direct TLS, after a PROXY header, "
            + "STARTTLS); Prosody's network_settings.ssl_handshake_timeout is read too",
        reload: .newConnections
    )
    public static let maxHandshakesPerSecond = OptionDeclaration(
        "ssl_max_handshakes_per_second", .integer, default: "\(TLSHandshakeLimits.defaultMaximumPerSecond)", scope: .global,
        help: "TLS handshakes that may start a second across the process (0: no limit); past it a new TLS connection "
            + "is closed before its handshake",
        reload: .applied
    )
    public static let serviceSSL = ServiceOptionDeclaration(
        suffix: "_ssl", .shaped("table, as ssl"),
        help: "TLS settings of one service, on top of ssl (global section)",
        reload: .newConnections
    )
    public static let serviceCertificate = ServiceOptionDeclaration(
        suffix: "_certificate", .string, default: "the certificates folder",
        help: "a certificate file or folder for one direct-TLS service (global section)",
        reload: .newConnections
    )

    public static let group = OptionRegistry.Group(
        "TLS", options: [ssl, certificates, certificate, tlsProfile, handshakeTimeout, maxHandshakesPerSecond],
        serviceOptions: [serviceSSL, serviceCertificate]
    )
}

import NetHostConfig

/// The options `TLSContexts` reads: Prosody's TLS settings and certificates.
public enum TLSConfigOptions {
    public static let ssl = OptionDeclaration(
        "ssl", .shaped("table { certificate, key, protocol, ciphers, curve, cafile, verify, options, ... }"),
        help: "TLS settings for every TLS service (global), or the certificate a host is served with (under a VirtualHost)"
    )
    public static let certificates = OptionDeclaration(
        "certificates", .string, default: #""certs""#, scope: .global,
        help: "a folder searched for certificates by host and service name (relative to the config)"
    )
    public static let certificate = OptionDeclaration(
        "certificate", .string,
        help: "a certificate file or folder for the hosts (under a VirtualHost: for that host)"
    )
    public static let tlsProfile = OptionDeclaration(
        "tls_profile", .string, default: #""intermediate""#, scope: .global,
        help: "Mozilla's profile the defaults come from: modern, intermediate, old or legacy"
    )
    public static let serviceSSL = ServiceOptionDeclaration(
        suffix: "_ssl", .shaped("table, as ssl"),
        help: "TLS settings of one service, on top of ssl (global section)"
    )
    public static let serviceCertificate = ServiceOptionDeclaration(
        suffix: "_certificate", .string, default: "the certificates folder",
        help: "a certificate file or folder for one direct-TLS service (global section)"
    )

    public static let group = OptionRegistry.Group(
        "TLS", options: [ssl, certificates, certificate, tlsProfile], serviceOptions: [serviceSSL, serviceCertificate]
    )
}

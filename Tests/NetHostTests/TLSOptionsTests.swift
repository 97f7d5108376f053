import NIOSSL
import NetHostTestSupport
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging

/// Reading Prosody's `ssl` tables into `TLSOptions`: pure, no sockets and no files.
@Suite("TLS options")
struct TLSOptionsTests {
    private func table(_ entries: [String: ConfigValue]) -> ConfigValue {
        .table(ConfigTable(map: Dictionary(uniqueKeysWithValues: entries.map { (.string($0.key), $0.value) })))
    }

    private func read(_ entries: [String: ConfigValue], option: String = "ssl") throws -> TLSOptions.Reading {
        try TLSOptions.read(table(entries), option: option, baseDirectory: "/etc/nethost")
    }

    private func options(_ entries: [String: ConfigValue], profile: TLSOptions.Profile = .intermediate) throws -> TLSOptions {
        try TLSOptions(profile: profile, layers: [read(entries).layer])
    }

    /// The message of the error `body` throws, or nil.
    private func problem(_ body: () throws -> Void) -> String? {
        do {
            try body()
            return nil
        } catch {
            return "\(error)"
        }
    }

    @Test("without settings: Mozilla's intermediate profile, TLS 1.2 and 1.3, ECDHE ciphers only, no client certificates")
    func defaults() throws {
        let defaults = try TLSOptions(layers: [])
        #expect(defaults.versions == .tls1_2 ... .tls1_3)
        #expect(defaults.ciphers.ciphers.map(\.name) == TLSOptions.Profile.intermediateCiphers.split(separator: ":").map(String.init))
        #expect(defaults.ciphers.withoutForwardSecrecy.isEmpty)
        #expect(defaults.clientCertificates == .notRequested)
        #expect(defaults.curves == nil)
    }

    @Test("ssl.protocol takes Prosody's values: \"tlsv1_2+\" that and later, \"tlsv1_3\" that only, \"sslv23\" any", arguments: [
        ("tlsv1_2+", TLSOptions.Version.tls1_2, TLSOptions.Version.tls1_3),
        ("tlsv1_3", .tls1_3, .tls1_3),
        ("tlsv1_2", .tls1_2, .tls1_2),
        ("tlsv1_1+", .tls1_1, .tls1_3),
        ("tlsv1+", .tls1_0, .tls1_3),
        ("sslv23", .tls1_0, .tls1_3),
        ("TLSv1_3", .tls1_3, .tls1_3),
    ])
    func protocolValues(text: String, lowest: TLSOptions.Version, highest: TLSOptions.Version) throws {
        #expect(try options(["protocol": .string(text)]).versions == lowest ... highest)
    }

    @Test("ssl.protocol: SSL 3 and names Prosody does not know are errors that say what to write")
    func protocolErrors() {
        #expect(problem { _ = try read(["protocol": .string("sslv3")]) }?.contains("ssl.protocol = \"sslv3\": SSL 2 and 3 are not supported") == true)
        #expect(problem { _ = try read(["protocol": .string("tls1.2")]) }?.contains("is not a protocol Prosody knows; use \"tlsv1_2+\"") == true)
        #expect(problem { _ = try read(["protocol": .integer(12)]) } == "ssl.protocol: expected a string, got number")
    }

    @Test("tls_profile: modern is TLS 1.3 only, old allows TLS 1.0 and ciphers without forward secrecy; ssl overrides the profile")
    func profiles() throws {
        #expect(try TLSOptions(profile: .modern, layers: []).versions == .tls1_3 ... .tls1_3)
        let old = try TLSOptions(profile: .old, layers: [])
        #expect(old.versions == .tls1_0 ... .tls1_3)
        #expect(old.ciphers.withoutForwardSecrecy.map(\.name).contains("AES128-SHA"))
        #expect(try options(["protocol": .string("tlsv1_2+")], profile: .modern).versions == .tls1_2 ... .tls1_3)
    }

    @Test("layers apply in order (global ssl, then NAME_ssl); options add up, and no_tlsv1_x removes a version")
    func layering() throws {
        let global = try read(["protocol": .string("tlsv1+"), "options": .strings("no_tlsv1")]).layer
        let service = try read(["ciphers": .string("ECDHE-RSA-AES256-GCM-SHA384"), "options": .strings("no_tlsv1_1")], option: "smtp_ssl").layer
        let merged = try TLSOptions(layers: [global, service])
        #expect(merged.versions == .tls1_2 ... .tls1_3)
        #expect(merged.ciphers.ciphers.map(\.name) == ["ECDHE-RSA-AES256-GCM-SHA384"])
        let reenabled = try read(["options": .table(ConfigTable(map: [.string("no_tlsv1"): .boolean(false)]))]).layer
        #expect(try TLSOptions(layers: [global, reenabled]).versions == .tls1_0 ... .tls1_3)
        let nothingLeft = problem { _ = try TLSOptions(layers: [read(["protocol": .string("tlsv1_3"), "options": .strings("no_tlsv1_3")]).layer]) }
        #expect(nothingLeft == "protocol TLS 1.3 only with options no_tlsv1_3 leaves no TLS version to speak")
    }

    @Test("ssl.ciphers: a string or a list; ciphers without forward secrecy and names BoringSSL lacks are noted; a string that selects nothing is an error")
    func ciphers() throws {
        let list = try read(["ciphers": .strings("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256", "DHE-RSA-AES128-GCM-SHA256")])
        #expect(list.layer.ciphers?.ciphers.map(\.name) == ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256"])
        #expect(list.notes == ["ssl.ciphers: DHE-RSA-AES128-GCM-SHA256 not known to NetHost's TLS library (BoringSSL), skipped"])

        let high = try read(["ciphers": .string("HIGH:!aNULL")])
        #expect(high.notes == ["ssl.ciphers selects ciphers without forward secrecy: AES128-GCM-SHA256, AES256-GCM-SHA384, AES128-SHA, AES256-SHA "
            + "(the default selects ECDHE ciphers only)"])  // "!aNULL" takes away what BoringSSL lacks anyway: nothing to say

        #expect(problem { _ = try read(["ciphers": .string("HIGH+kEDH")]) }
            == "ssl.ciphers: 'HIGH+kEDH' selects no cipher that NetHost's TLS library (BoringSSL) offers (not known to BoringSSL: kEDH)")
        #expect(problem { _ = try read(["ciphers": .string("ALL:@SECLEVEL=2")]) }?.contains("@SECLEVEL is not a cipher string command") == true)
        #expect(problem { _ = try read(["ciphers": .string("[AES128-SHA:AES256-SHA]")]) }?.contains("cannot appear inside [...]") == true)
        #expect(problem { _ = try read(["ciphers": .string("")]) } != nil)
    }

    /// Strings BoringSSL accepts, from Prosody's profiles and defaults, swift-nio-ssl's
    /// default, and each operator and alias of the language.
    static let cipherStrings = [
        "ALL", "DEFAULT", "HIGH", "HIGH:!aNULL", "HIGH+kEECDH:HIGH+kEDH:HIGH:!PSK:!SRP:!3DES:!aNULL",
        TLSOptions.Profile.intermediateCiphers, TLSOptions.Profile.oldCiphers, defaultCipherSuites,
        "ECDHE+AESGCM", "ECDH+CHACHA20", "AES128-SHA", "RSA", "kRSA:3DES", "ALL:-ECDHE:+kRSA", "ALL:!ECDHE", "ALL:!kRSA:RSA",
        "TLSv1.2", "SSLv3", "TLSv1", "ALL:@STRENGTH", "AES+SHA1", "ECDSA", "aRSA+AES256", "PSK", "ECDHE-RSA-AES128-SHA256",
        "ALL:ECDHE-RSA-AES128-SHA256", "3DES", "-ALL:AES256-SHA", "AES128:AES256:!SHA", "CHACHA20 AESGCM, 3DES;FIPS",
        "[ECDHE-RSA-AES128-GCM-SHA256|ECDHE-RSA-CHACHA20-POLY1305]:AES128-SHA", "TLS_AES_128_GCM_SHA256:AES128-SHA",
        "TLS_RSA_WITH_AES_128_CBC_SHA", "DEFAULT:!kRSA:@STRENGTH", "ALL:+3DES:+SHA:-AESGCM",
    ]

    @Test("the cipher string is evaluated as BoringSSL evaluates it (compared with BoringSSL itself)", arguments: cipherStrings)
    func cipherRuleMatchesBoringSSL(text: String) throws {
        // A client configuration: the cipher list is evaluated the same way, and no key is needed.
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.cipherSuites = text
        let boringSSL = Set(configuration.cipherSuiteValues.map(\.rawValue)).subtracting([0x1301, 0x1302, 0x1303])
        let ours = Set(try CipherRule(text).ciphers.map(\.id))
        #expect(ours == boringSSL, "\(text): NetHost \(ours.sorted()) BoringSSL \(boringSSL.sorted())")
    }

    @Test("ssl.curve and ssl.curveslist take OpenSSL's names; X448 is noted as not offered; an unknown name is an error")
    func curves() throws {
        #expect(try read(["curve": .string("secp384r1")]).layer.curves == [.p384])
        let list = try read(["curveslist": .strings("X25519", "prime256v1", "X448")])
        #expect(list.layer.curves == [.x25519, .p256])
        #expect(list.notes == ["ssl.curveslist: X448 not offered by NetHost's TLS library (BoringSSL), skipped"])
        #expect(problem { _ = try read(["curve": .string("brainpoolP256r1")]) }?.hasPrefix("ssl.curve: unknown curve \"brainpoolP256r1\"") == true)
    }

    @Test("ssl.verify: none, peer (verified if presented), peer with fail_if_no_peer_cert (required)")
    func verify() throws {
        #expect(try read(["verify": .string("none")]).layer.clientCertificates == TLSOptions.ClientCertificates.notRequested)
        #expect(try read(["verify": .string("peer")]).layer.clientCertificates == TLSOptions.ClientCertificates.verifiedIfPresented)
        #expect(try read(["verify": .strings("peer", "fail_if_no_peer_cert", "client_once")]).layer.clientCertificates
            == TLSOptions.ClientCertificates.required)
        #expect(try read(["verify": .strings("fail_if_no_peer_cert")]).layer.clientCertificates == TLSOptions.ClientCertificates.notRequested)
        #expect(problem { _ = try read(["verify": .string("sometimes")]) }?.hasPrefix("ssl.verify: unknown value \"sometimes\"") == true)
    }

    @Test("file paths are taken relative to the config's folder")
    func paths() throws {
        let layer = try read(["certificate": .string("certs/x.crt"), "key": .string("/srv/x.key"), "cafile": .string("ca.pem")]).layer
        #expect(layer.certificate == "/etc/nethost/certs/x.crt")
        #expect(layer.key == "/srv/x.key")
        #expect(layer.caFile == "/etc/nethost/ca.pem")
    }

    @Test("keys NetHost does not honour are noted by name; options BoringSSL always applies are accepted silently", arguments: [
        ("dhparam", ConfigValue.string("dh.pem"), "ssl.dhparam is not honoured: NetHost's TLS library (BoringSSL) has no finite-field Diffie-Hellman"),
        ("depth", .integer(5), "ssl.depth is not honoured"),
        ("verifyext", .strings("lsec_continue"), "ssl.verifyext is not honoured"),
        ("ciphersuites", .string("TLS_AES_256_GCM_SHA384"), "ssl.ciphersuites is not honoured: NetHost's TLS library (BoringSSL) always offers"),
        ("options", .strings("no_ticket", "no_compression"), "ssl.options: no_ticket not honoured"),
        ("mode", .string("client"), "ssl.mode is not honoured"),
        ("sni", .boolean(true), "ssl.sni is not an ssl key NetHost knows; it is ignored"),
        ("127.0.0.1", .table(ConfigTable()), "ssl[\"127.0.0.1\"]: per-interface ssl tables are not honoured"),
    ])
    func notHonoured(key: String, value: ConfigValue, note: String) throws {
        let reading = try read([key: value])
        #expect(reading.notes.count == 1 && reading.notes[0].hasPrefix(note), "\(reading.notes)")
    }

    @Test("settings that are honoured or always true say nothing")
    func honouredSaysNothing() throws {
        let reading = try read([
            "certificate": .string("x.crt"), "key": .string("x.key"), "protocol": .string("tlsv1_2+"),
            "ciphers": .string(TLSOptions.Profile.intermediateCiphers), "curve": .string("prime256v1"),
            "verify": .string("none"), "options": .strings("no_sslv2", "no_sslv3", "no_compression", "single_ecdh_use", "no_tlsv1"),
            "ciphersuites": .strings("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"),
            "mode": .string("server"),
        ])
        #expect(reading.notes.isEmpty, "\(reading.notes)")
    }

    @Test("certificate files are found by name as Prosody's certmanager finds them, parent domains included")
    func locator() {
        let files: Set<String> = [
            "/c/example.com.crt", "/c/example.com.key",
            "/c/le.example/fullchain.pem", "/c/le.example/privkey.pem",
            "/c/both.example.pem",
            "/c/alone.example.crt",
            "/etc/ssl/direct.crt", "/etc/ssl/direct.key",
        ]
        let locator = CertificateLocator(isFile: { files.contains($0) })
        #expect(locator.find(in: "/c", host: "example.com") == .init(certificate: "/c/example.com.crt", key: "/c/example.com.key"))
        #expect(locator.find(in: "/c", host: "conference.example.com") == .init(certificate: "/c/example.com.crt", key: "/c/example.com.key"))
        #expect(locator.find(in: "/c", host: "le.example") == .init(certificate: "/c/le.example/fullchain.pem", key: "/c/le.example/privkey.pem"))
        #expect(locator.find(in: "/c", host: "both.example") == .init(certificate: "/c/both.example.pem", key: "/c/both.example.pem"))
        #expect(locator.find(in: "/c", host: "alone.example") == nil)  // no key beside it
        #expect(locator.find(in: "/etc/ssl/direct.crt", host: "any.example") == .init(certificate: "/etc/ssl/direct.crt", key: "/etc/ssl/direct.key"))
        #expect(locator.find(in: "/c", host: "other.test") == nil)
    }
}

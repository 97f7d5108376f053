import NetHostCore
import Testing
@testable import ProxyModule

/// `nethost check`'s audit of whom net_proxy trusts: a PROXY header from a trusted
/// sender decides the client address a service sees.
@Suite("PROXY trust audit")
struct ProxyTrustAuditTests {
    static let everywhere = [ListeningAddress(interface: "*", port: 15222), ListeningAddress(interface: "::", port: 15222)]
    static let loopback = [ListeningAddress(interface: "127.0.0.1", port: 15222), ListeningAddress(interface: "::1", port: 15222)]

    static func configuration(trusting entries: [String]) throws -> ProxyConfiguration {
        ProxyConfiguration(portMappings: [15222: "c2s"], trustedProxies: try TrustedProxies(entries))
    }

    @Test("trusting everyone on a port that listens beyond loopback is an error naming the ports")
    func everyoneExposed() throws {
        let findings = try Self.configuration(trusting: []).audit(listeningOn: Self.everywhere)
        #expect(findings.map(\.severity) == [.error])
        #expect(findings.first?.message.contains("every interface port 15222, :: port 15222") == true, "\(findings)")
    }

    @Test("trusting everyone on loopback only is no audit finding (the module's own warning remains)")
    func everyoneOnLoopback() throws {
        #expect(try Self.configuration(trusting: []).audit(listeningOn: Self.loopback).isEmpty)
    }

    @Test("a trusted network with public addresses is a warning naming it; private, loopback and link-local ones are not", arguments: [
        (["127.0.0.1", "::1", "10.0.0.0/8", "172.16.0.0/12", "192.168.1.0/24", "fd00::/8", "fe80::/64", "100.64.0.1"], []),
        (["10.0.0.0/8", "203.0.113.0/24"], ["203.0.113.0/24"]),
        (["0.0.0.0/0"], ["0.0.0.0/0"]),
        (["172.0.0.0/8"], ["172.0.0.0/8"]),  // wider than 172.16.0.0/12
        (["2001:db8::/32", "::1"], ["2001:db8::/32"]),
    ])
    func publicNetworks(entries: [String], reported: [String]) throws {
        let findings = try Self.configuration(trusting: entries).audit(listeningOn: Self.everywhere)
        if reported.isEmpty {
            #expect(findings.isEmpty, "\(findings)")
        } else {
            #expect(findings.map(\.severity) == [.warning])
            #expect(findings.first?.message.contains("(\(reported.joined(separator: ", ")))") == true, "\(findings)")
        }
    }
}

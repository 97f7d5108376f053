import NetHostCore

extension TrustedProxies.Network {
    /// Addresses no one on the Internet can have: loopback, private (RFC 1918, RFC
    /// 4193), link-local, shared CGNAT space (RFC 6598). A trusted network outside
    /// them lets hosts elsewhere claim any client address.
    static let nonPublic: [TrustedProxies.Network] = [
        "127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10",
        "::1/128", "fc00::/7", "fe80::/10",
    ].compactMap { try? TrustedProxies.Network(parsing: $0) }

    /// Whether every address of this network is a non-public one.
    var isNonPublic: Bool {
        Self.nonPublic.contains { range in
            range.prefixLength128 <= prefixLength128 && range.contains(high: high, low: low)
        }
    }
}

extension ProxyPipeline {
    func audit(listeningOn addresses: [ListeningAddress]) -> [AuditFinding] {
        configuration.audit(listeningOn: addresses)
    }
}

extension ProxyConfiguration {
    /// A PROXY header from a trusted sender decides which client address the
    /// service sees, so whom the port trusts is a security decision:
    /// - trusting everyone (`proxy_trusted_proxies = {}`) on a port that listens
    ///   beyond loopback lets anyone who reaches it claim any address: an error;
    /// - trusting a network with public addresses: a warning.
    func audit(listeningOn addresses: [ListeningAddress]) -> [AuditFinding] {
        var findings: [AuditFinding] = []
        let trusted = trustedProxies
        let exposed = addresses.filter { !$0.isLoopbackOnly && portMappings[$0.port] != nil }
        if trusted.trustsEveryone, !exposed.isEmpty {
            let where_ = exposed.map { "\($0.interface == "*" ? "every interface" : $0.interface) port \($0.port)" }
            findings.append(AuditFinding(
                .error,
                "proxy_trusted_proxies = {} trusts every sender, and PROXY ports listen beyond loopback (\(where_.joined(separator: ", "))): "
                    + "anyone who can connect there can claim any client address; list your load balancers' addresses"
            ))
        }
        let publicNetworks = trusted.networks.filter { !$0.isNonPublic }
        if !publicNetworks.isEmpty {
            findings.append(AuditFinding(
                .warning,
                "proxy_trusted_proxies includes public addresses (\(publicNetworks.map(\.description).joined(separator: ", "))): "
                    + "a sender there can claim any client address; trust only your load balancers"
            ))
        }
        return findings
    }
}

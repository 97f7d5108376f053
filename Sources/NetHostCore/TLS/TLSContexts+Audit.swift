extension TLSContexts {
    /// The certificates in force that end within `margin` of `now`, one warning each
    /// naming the file, its subject, the date and who is served with it; for
    /// `nethost check`, and logged at start and at each reload. A certificate that
    /// has already expired, or is not valid yet, is not repeated here: loading it
    /// said so, and that is a problem (`LoadedCertificate.validityNote`).
    ///
    /// - Parameter services: the services, to name those served with the shared
    ///   certificate (direct TLS without settings of their own).
    public func audit(services: [NetService], now: Int, margin: Int = CertificateValidity.renewalMargin) -> [AuditFinding] {
        let snapshot = inForce
        var order: [String] = []
        var certificates: [String: LoadedCertificate] = [:]
        var users: [String: [String]] = [:]
        func note(_ certificate: LoadedCertificate, _ user: String) {
            let path = certificate.certificatePath
            if certificates[path] == nil {
                certificates[path] = certificate
                order.append(path)
            }
            if users[path, default: []].contains(user) == false { users[path, default: []].append(user) }
        }
        if let shared = snapshot.shared {
            for service in services where service.usesDirectTLS && snapshot.byService[service.name] == nil {
                note(shared.certificate, "service '\(service.name)'")
            }
            // Any service may call conn:starttls(), which uses this context.
            note(shared.certificate, "STARTTLS")
        }
        for (name, settings) in snapshot.byService.sorted(by: { $0.key < $1.key }) {
            note(settings.certificate, "service '\(name)'")
        }
        let contexts = [snapshot.shared].compactMap { $0 } + snapshot.byService.sorted(by: { $0.key < $1.key }).map(\.value)
        for context in contexts {
            for (host, certificate) in context.hostCertificates.sorted(by: { $0.key < $1.key }) {
                note(certificate, "host \(host)")
            }
        }
        return order.compactMap { path -> AuditFinding? in
            guard let certificate = certificates[path],
                  case .expiresSoon(let end, let left) = certificate.validity(now: now, margin: margin)
            else { return nil }
            let subject = certificate.subject.isEmpty ? "no subject" : certificate.subject
            return AuditFinding(
                .warning,
                "certificate \(path) (\(subject)) expires on \(LoadedCertificate.date(end)), \(CertificateValidity.timeLeft(left)) "
                    + "(used for \(users[path, default: []].joined(separator: ", "))): renew it before clients refuse it"
            )
        }
    }
}

import Logging
import NetHostConfig
import NetHostLogging
import NIOConcurrencyHelpers
import NIOCore

/// The TLS contexts in force: one shared by every service (from the global `ssl`),
/// and one for each service that has settings of its own (`NAME_ssl`, or for a
/// direct-TLS service a certificate of its own in the `certificates` folder).
/// Built at start and again on every reload (SIGHUP), so a renewed certificate is
/// served to new connections without a restart; a certificate that fails to load
/// on reload leaves the one loaded before in place.
public final class TLSContexts: Sendable {
    struct Snapshot: Sendable {
        var shared: TLSSettings?
        var byService: [String: TLSSettings] = [:]
    }

    private let current = NIOLockedValueBox(Snapshot())
    /// Failed handshakes of every context, logged at info once per peer and reason,
    /// then summarised.
    let handshakeFailures: RepeatedEventLog
    /// `ssl_handshake_timeout` and `ssl_max_handshakes_per_second`, for every
    /// context: one rate across the process, and a reload changes both for all.
    public let handshakeLimits: TLSHandshakeLimits

    public init(logger: Logger) {
        self.handshakeFailures = RepeatedEventLog(logger: logger)
        self.handshakeLimits = TLSHandshakeLimits(failures: handshakeFailures, logger: logger)
    }

    /// The context for connections of `service`; nil when no certificate is configured for it.
    public func settings(forService service: String) -> TLSSettings? {
        current.withLockedValue { $0.byService[service] ?? $0.shared }
    }

    /// The context shared by services without settings of their own.
    public var shared: TLSSettings? { current.withLockedValue { $0.shared } }

    /// Every context in force, at one moment.
    var inForce: Snapshot { current.withLockedValue { $0 } }

    /// Logs the summaries of handshake failures (timeouts included) and refusals that repeated.
    public func flushSummaries() {
        handshakeFailures.flush()
        handshakeLimits.flush()
    }

    /// Something loading found, for the log (and, from warning up, for `nethost check`).
    public struct Message: Sendable, CustomStringConvertible, Equatable {
        public let level: Logger.Level
        public let description: String
    }

    /// Settings that stop start-up: an `ssl` or `NAME_ssl` NetHost cannot use.
    public struct LoadError: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// Reads the TLS options for `services` and swaps the new contexts in.
    /// At start (`reloading` false) an unusable `ssl` or `NAME_ssl` throws and
    /// nothing is loaded; on reload it is reported and the context loaded before
    /// stays. Returns what there is to log, in order.
    @discardableResult
    public func load(
        options: any OptionSource, services: [NetService], baseDirectory: String, reloading: Bool, now: Int
    ) throws(LoadError) -> [Message] {
        var builder = Builder(
            options: options, baseDirectory: baseDirectory, previous: current.withLockedValue { $0 },
            reloading: reloading, failures: handshakeFailures, limits: handshakeLimits, now: now
        )
        let snapshot = builder.build(services: services)
        let (timeout, perSecond) = builder.readHandshakeLimits()
        if !builder.fatal.isEmpty {
            throw LoadError(description: builder.fatal.joined(separator: "; "))
        }
        handshakeLimits.timeout = timeout
        handshakeLimits.maximumPerSecond = perSecond
        current.withLockedValue { $0 = snapshot }
        return builder.messages
    }
}

extension TLSContexts {
    /// One pass over the options: the hosts' certificates, the shared context, the services' own.
    struct Builder {
        let options: any OptionSource
        let baseDirectory: String
        let previous: Snapshot
        let reloading: Bool
        let failures: RepeatedEventLog
        let limits: TLSHandshakeLimits
        let now: Int
        let locator = CertificateLocator()
        var messages: [Message] = []
        /// Errors that stop start-up.
        var fatal: [String] = []

        private var profile = TLSOptions.Profile.intermediate
        /// The `certificates` folder (absolute).
        private var certificatesFolder = ""
        private var hostCertificates: [String: LoadedCertificate] = [:]
        /// Hosts with a certificate, in the config's order.
        private var hostOrder: [String] = []

        init(options: any OptionSource, baseDirectory: String, previous: Snapshot, reloading: Bool,
             failures: RepeatedEventLog, limits: TLSHandshakeLimits, now: Int) {
            self.options = options
            self.baseDirectory = baseDirectory
            self.previous = previous
            self.reloading = reloading
            self.failures = failures
            self.limits = limits
            self.now = now
        }

        private func resolve(_ path: String) -> String {
            path.hasPrefix("/") ? path : baseDirectory + "/" + path
        }

        private mutating func say(_ level: Logger.Level, _ text: String) {
            messages.append(Message(level: level, description: text))
        }

        mutating func build(services: [NetService]) -> Snapshot {
            readProfile()
            readCertificatesFolder()
            let global = readLayer(options.value(TLSConfigOptions.ssl), option: TLSConfigOptions.ssl.name, previous: previous.shared)
            findHostCertificates(services: services)
            var snapshot = Snapshot()
            if let global {
                snapshot.shared = settings(option: TLSConfigOptions.ssl.name, layers: [global], own: nil, previous: previous.shared)
            } else {
                snapshot.shared = previous.shared
            }
            for service in services {
                let name = service.name
                let serviceOption = TLSConfigOptions.serviceSSL.named(name)
                let ownValue = options.value(serviceOption)
                let option = ownValue != nil ? serviceOption.name : "service '\(name)'"
                var layer: TLSOptions.Layer? = TLSOptions.Layer()
                if let ownValue {
                    layer = readLayer(ownValue, option: option, previous: previous.byService[name])
                }
                // Prosody's find_service_cert: a direct-TLS service's own files, unless ssl names a certificate.
                var own: CertificateLocator.Found?
                if service.usesDirectTLS, global?.certificate == nil, layer?.certificate == nil {
                    own = serviceCertificate(name)
                }
                guard ownValue != nil || own != nil else { continue }
                guard let global, let layer else {
                    snapshot.byService[name] = previous.byService[name]
                    continue
                }
                snapshot.byService[name] = settings(option: option, layers: [global, layer], own: own, previous: previous.byService[name])
            }
            if let shared = snapshot.shared {
                say(.info, "TLS: \(shared.summary)")
            }
            for (name, settings) in snapshot.byService.sorted(by: { $0.key < $1.key }) {
                say(.info, "TLS for service '\(name)': \(settings.summary)")
            }
            return snapshot
        }

        /// `ssl_handshake_timeout`: the global option, else Prosody's
        /// `network_settings.ssl_handshake_timeout` (or its alias `handshake_timeout`,
        /// whose problems `NetworkSettings` reports), else 60 s; and
        /// `ssl_max_handshakes_per_second`. A value that cannot be used is warned
        /// about and the default used.
        mutating func readHandshakeLimits() -> (timeout: TimeAmount, perSecond: Int) {
            let option = TLSConfigOptions.handshakeTimeout.name
            var ignored: [NetworkSettings.Problem] = []
            let fromNetworkSettings = NetworkSettings(
                from: options.value(NetworkOptions.networkSettings)?.tableValue, problems: &ignored
            ).tlsHandshakeTimeout
            var seconds = fromNetworkSettings ?? TLSHandshakeLimits.defaultTimeout
            if let value = options.value(TLSConfigOptions.handshakeTimeout) {
                if let number = value.numberValue, number > 0, number.isFinite {
                    if let fromNetworkSettings, fromNetworkSettings != number {
                        let (global, network) = (TLSHandshakeLimits.seconds(number), TLSHandshakeLimits.seconds(fromNetworkSettings))
                        say(.warning, "\(option) = \(global) and network_settings.\(option) = \(network) disagree; \(global) is used")
                    }
                    seconds = number
                } else {
                    say(.warning, "\(option): expected a number of seconds above 0, got \(value.numberValue.map(TLSHandshakeLimits.seconds) ?? value.typeName); "
                        + "\(TLSHandshakeLimits.seconds(seconds)) is used")
                }
            }
            let timeout = (try? TimeoutSeconds.timeAmount(seconds)) ?? .seconds(Int64(TLSHandshakeLimits.defaultTimeout))

            let rateOption = TLSConfigOptions.maxHandshakesPerSecond.name
            var perSecond = TLSHandshakeLimits.defaultMaximumPerSecond
            if let value = options.value(TLSConfigOptions.maxHandshakesPerSecond) {
                if let number = value.integerValue, (0...TLSHandshakeLimits.maximumPerSecondCeiling).contains(number) {
                    perSecond = number
                } else {
                    say(.warning, "\(rateOption): expected a whole number from 0 (no limit) to \(TLSHandshakeLimits.maximumPerSecondCeiling), "
                        + "got \(value.numberValue.map(TLSHandshakeLimits.seconds) ?? value.typeName); \(perSecond) is used")
                }
            }
            return (timeout, perSecond)
        }

        private mutating func readProfile() {
            guard let value = options.value(TLSConfigOptions.tlsProfile) else { return }
            if let name = value.stringValue, let chosen = TLSOptions.Profile(rawValue: name) {
                profile = chosen
            } else {
                say(.warning, "tls_profile = \(value.stringValue.map { "\"\($0)\"" } ?? value.typeName) is not a profile NetHost knows "
                    + "(modern, intermediate, old, legacy); intermediate is used")
            }
        }

        private mutating func readCertificatesFolder() {
            let value = options.value(TLSConfigOptions.certificates)
            certificatesFolder = resolve(value?.stringValue ?? "certs")
            guard let value else { return }
            guard let name = value.stringValue else {
                say(.warning, "certificates: expected a folder name like \"certs\", got \(value.typeName); \"certs\" is used")
                return
            }
            if !CertificateLocator.isFolder(certificatesFolder) {
                say(.warning, "certificates = \"\(name)\": the folder \(certificatesFolder) does not exist; no certificate is found there")
            }
        }

        /// An `ssl`-shaped option read into a layer; nil (with the error said) when it cannot be used.
        private mutating func readLayer(_ value: ConfigValue?, option: String, previous: TLSSettings?) -> TLSOptions.Layer? {
            guard let value else { return TLSOptions.Layer() }
            do {
                let reading = try TLSOptions.read(value, option: option, baseDirectory: baseDirectory)
                for note in reading.notes { say(.warning, note) }
                return reading.layer
            } catch {
                fail("\(error)", previous: previous)
                return nil
            }
        }

        /// An error in settings: stops start-up, or on reload is logged (what stays is said by the caller).
        private mutating func fail(_ text: String, previous: TLSSettings?) {
            if !reloading {
                fatal.append(text)
            } else if let previous {
                say(.error, "\(text); the certificate and settings loaded before stay in force (\(previous.certificatePath))")
            } else {
                say(.error, text)
            }
        }

        /// A service's own certificate: `NAME_certificate`, else NAME's files in the `certificates` folder.
        private mutating func serviceCertificate(_ name: String) -> CertificateLocator.Found? {
            var location = certificatesFolder
            if let value = options.value(TLSConfigOptions.serviceCertificate.named(name)) {
                if let path = value.stringValue {
                    location = resolve(path)
                } else {
                    say(.warning, "\(name)_certificate: per-port tables are not honoured by NetHost; give a file or folder name")
                }
            }
            return locator.find(in: location, name: name)
        }

        /// Certificates the config's hosts are served with when a client names them (SNI):
        /// the host's own `ssl`, else its `certificate` option, else the `certificates` folder.
        private mutating func findHostCertificates(services: [NetService]) {
            for host in options.definedHosts.map(\.name) {
                let label = "ssl under \"\(host)\""
                var found: CertificateLocator.Found?
                var password: String?
                for service in services where options.hostValue(TLSConfigOptions.serviceSSL.named(service.name), host: host) != nil {
                    say(.warning, "\(service.name)_ssl under \"\(host)\" is not honoured: per-host settings come from ssl under \"\(host)\"; "
                        + "\(service.name)_ssl applies in the global section")
                }
                if let own = options.hostValue(TLSConfigOptions.ssl, host: host) {
                    let reading: TLSOptions.Reading
                    do {
                        reading = try TLSOptions.read(own, option: label, baseDirectory: baseDirectory)
                    } catch {
                        keepHost(host, after: "\(error)")
                        continue
                    }
                    for note in reading.notes { say(.warning, note) }
                    let layer = reading.layer
                    let perService = [
                        ("protocol", layer.protocolSetting != nil), ("ciphers", layer.ciphers != nil), ("curve", layer.curves != nil),
                        ("cafile", layer.caFile != nil), ("capath", layer.caPath != nil), ("verify", layer.clientCertificates != nil),
                        ("options", !layer.options.isEmpty),
                    ].filter(\.1).map(\.0)
                    if !perService.isEmpty {
                        say(.warning, "\(label): \(perService.joined(separator: ", ")) not honoured per host: the TLS library picks the "
                            + "certificate by name, but the service's settings (ssl, NAME_ssl) apply to every host; "
                            + "only certificate, key and password are used here")
                    }
                    switch (layer.certificate, layer.key) {
                    case (let certificate?, let key?):
                        found = CertificateLocator.Found(certificate: certificate, key: key)
                        password = layer.password
                    case (nil, nil):
                        break
                    default:
                        keepHost(host, after: "\(label) needs both certificate and key (file paths)")
                        continue
                    }
                }
                if found == nil {
                    let location = (options.hostValue(TLSConfigOptions.certificate, host: host) ?? options.value(TLSConfigOptions.certificate))?
                        .stringValue.map(resolve) ?? certificatesFolder
                    found = locator.find(in: location, host: host)
                }
                guard let found else { continue }
                do {
                    let loaded = try LoadedCertificate.load(certificate: found.certificate, key: found.key, password: password)
                    if let note = loaded.validityNote(now: now) { say(.warning, note) }
                    hostCertificates[host] = loaded
                    hostOrder.append(host)
                } catch {
                    keepHost(host, after: "host \"\(host)\": \(error)")
                }
            }
        }

        /// A host's certificate failed: never fatal (Prosody goes on too); on reload the one loaded before stays.
        private mutating func keepHost(_ host: String, after error: String) {
            if let kept = previous.shared?.hostCertificates[host] ?? previous.byService.values.lazy.compactMap({ $0.hostCertificates[host] }).first {
                say(.error, "\(error); \(kept.certificatePath), loaded before, stays in force for \(host)")
                hostCertificates[host] = kept
                hostOrder.append(host)
            } else {
                say(.error, "\(error); clients naming \(host) get the default certificate")
            }
        }

        /// One context from `layers` over the profile. The certificate is the layers'
        /// (`certificate` and `key`), else `own` (a service's files), else the first
        /// host's; with none, there is no context (nil) and nothing is wrong yet:
        /// services that need TLS say so when their ports open.
        private mutating func settings(
            option: String, layers: [TLSOptions.Layer], own: CertificateLocator.Found?, previous: TLSSettings?
        ) -> TLSSettings? {
            let tlsOptions: TLSOptions
            do {
                tlsOptions = try TLSOptions(profile: profile, layers: layers)
            } catch {
                fail("\(option): \(error)", previous: previous)
                return previous
            }
            let certificate: LoadedCertificate
            do throws(CertificateFileError) {
                switch (tlsOptions.certificate, tlsOptions.key) {
                case (let path?, let key?):
                    certificate = try LoadedCertificate.load(certificate: path, key: key, password: tlsOptions.password)
                case (nil, nil):
                    if let own {
                        certificate = try LoadedCertificate.load(certificate: own.certificate, key: own.key, password: tlsOptions.password)
                    } else if let first = hostOrder.first, let hostCertificate = hostCertificates[first] {
                        certificate = hostCertificate
                    } else {
                        return nil
                    }
                case (_?, nil):
                    throw CertificateFileError("a certificate without a key: set key = \"...\" beside certificate")
                case (nil, _?):
                    throw CertificateFileError("a key without a certificate: set certificate = \"...\" beside key")
                }
            } catch {
                fail("\(option): \(error)", previous: previous)
                return previous
            }
            if let note = certificate.validityNote(now: now), hostCertificates.values.allSatisfy({ $0.certificatePath != certificate.certificatePath }) {
                say(.warning, note)
            }
            do {
                return try TLSSettings(options: tlsOptions, certificate: certificate, hostCertificates: hostCertificates,
                                       handshakeFailures: failures, handshakeLimits: limits)
            } catch {
                fail("\(option): \(error)", previous: previous)
                return previous
            }
        }
    }
}

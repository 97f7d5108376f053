import NetHostConfig

/// Reading Prosody's `ssl` table (and `NAME_ssl`, and a host's `ssl`) into a
/// `TLSOptions.Layer`. Pure: no files are opened. A value NetHost cannot use in the
/// way it was meant (a `protocol` it does not know, a cipher string that selects
/// nothing) is an error; a key NetHost does not honour is a note, so that nothing
/// is ignored without a word.
extension TLSOptions {
    /// A layer and what was said about it.
    public struct Reading: Sendable, Equatable {
        public var layer: Layer
        /// Keys that are not honoured, and settings that work but deserve a look.
        public var notes: [String]
    }

    /// Reads one `ssl`-shaped value. `option` names it in messages ("ssl",
    /// "smtp_ssl", "ssl under VirtualHost \"example.com\""); relative paths are
    /// taken against `baseDirectory` (the config's folder), as Prosody does.
    public static func read(_ value: ConfigValue, option: String, baseDirectory: String) throws(Problem) -> Reading {
        guard case .table(let table) = value else {
            throw Problem("\(option): expected a table like { certificate = \"certs/example.crt\", key = \"certs/example.key\" }, got \(value.typeName)")
        }
        var reader = Reader(option: option, baseDirectory: baseDirectory)
        try reader.read(table)
        return Reading(layer: reader.layer, notes: reader.notes)
    }

    /// Prosody's `protocol` values: "sslv23" (any), "tlsv1_2+" (that and later),
    /// "tlsv1_2" (that only). SSL 2 and 3 are refused.
    public static func protocolSetting(_ text: String) -> ProtocolSetting? {
        let name = text.lowercased()
        switch name {
        case "sslv23", "any", "tls", "sslv2+", "sslv3+": return .atLeast(.tls1_0)
        default: break
        }
        let plus = name.hasSuffix("+")
        let bare = plus ? String(name.dropLast()) : name
        guard let version = Version.allCases.first(where: { $0.prosodyName == bare || bare == "tlsv1_0" && $0 == .tls1_0 }) else {
            return nil
        }
        return plus ? .atLeast(version) : .only(version)
    }

    /// A curve name as OpenSSL and Prosody write it: "X25519", "prime256v1", "secp384r1", "P-521".
    public static func curve(named text: String) -> Curve? {
        switch text.lowercased() {
        case "x25519": .x25519
        case "prime256v1", "secp256r1", "p-256": .p256
        case "secp384r1", "p-384": .p384
        case "secp521r1", "p-521": .p521
        case "x25519mlkem768": .x25519MLKEM768
        default: nil
        }
    }

    /// Options BoringSSL always applies: accepted silently when turned on.
    static let optionsAlwaysOn: Set<String> = [
        "no_sslv2", "no_sslv3", "no_compression", "single_dh_use", "single_ecdh_use", "no_renegotiation",
    ]

    /// The TLS 1.3 suites BoringSSL always offers (Prosody's `ciphersuites` in every profile).
    static let tls13Suites: Set<String> = ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"]

    private struct Reader {
        let option: String
        let baseDirectory: String
        var layer = Layer()
        var notes: [String] = []

        init(option: String, baseDirectory: String) {
            self.option = option
            self.baseDirectory = baseDirectory
        }

        mutating func read(_ table: ConfigTable) throws(Problem) {
            if !table.array.isEmpty {
                notes.append("\(option): \(table.array.count) list item(s) without a key are ignored; ssl takes keys such as certificate = \"...\"")
            }
            for (key, value) in table.map.sorted(by: { $0.key < $1.key }) {
                guard case .string(let name) = key else {
                    notes.append("\(option)[\(key.text)]: per-port ssl tables are not honoured by NetHost; the service's ssl applies on every port")
                    continue
                }
                try read(name, value)
            }
        }

        private mutating func read(_ name: String, _ value: ConfigValue) throws(Problem) {
            switch name {
            case "certificate": layer.certificate = try path(name, value)
            case "key": layer.key = try path(name, value)
            case "cafile": layer.caFile = try path(name, value)
            case "capath": layer.caPath = try path(name, value)
            case "password": layer.password = try string(name, value)
            case "protocol":
                let text = try string(name, value)
                guard let setting = TLSOptions.protocolSetting(text) else {
                    let known = "\"tlsv1_2+\" (the default), \"tlsv1_3\", \"tlsv1_2\", \"tlsv1+\" or \"sslv23\""
                    if text.lowercased().hasPrefix("sslv") {
                        throw Problem("\(option).protocol = \"\(text)\": SSL 2 and 3 are not supported; use \(known)")
                    }
                    throw Problem("\(option).protocol = \"\(text)\" is not a protocol Prosody knows; use \(known)")
                }
                layer.protocolSetting = setting
            case "ciphers": try readCiphers(value)
            case "curve": layer.curves = try curves(name, [value])
            case "curveslist":
                guard case .table(let list) = value else {
                    throw Problem("\(option).curveslist: expected a list of curve names like { \"X25519\", \"prime256v1\" }, got \(value.typeName)")
                }
                layer.curves = try curves(name, list.array)
            case "verify": layer.clientCertificates = try verify(value)
            case "options": try readOptions(value)
            case "ciphersuites":
                let suites = Set(try stringList(name, value).flatMap { $0.split(separator: ":").map(String.init) })
                if suites != TLSOptions.tls13Suites {
                    notes.append("\(option).ciphersuites is not honoured: NetHost's TLS library (BoringSSL) always offers the TLS 1.3 suites "
                        + TLSOptions.tls13Suites.sorted().joined(separator: ", "))
                }
            case "dhparam":
                notes.append("\(option).dhparam is not honoured: NetHost's TLS library (BoringSSL) has no finite-field Diffie-Hellman (DHE) ciphers; "
                    + "forward secrecy comes from ECDHE")
            case "depth":
                notes.append("\(option).depth is not honoured: client certificate chains may be as long as BoringSSL allows (100)")
            case "verifyext":
                notes.append("\(option).verifyext is not honoured: a client certificate that fails verification is refused during the handshake")
            case "mode":
                if value.stringValue != "server" {
                    notes.append("\(option).mode is not honoured: NetHost's listening services are TLS servers")
                }
            default:
                if case .table = value {
                    notes.append("\(option)[\"\(name)\"]: per-interface ssl tables are not honoured by NetHost; the service's ssl applies on every interface")
                } else {
                    notes.append("\(option).\(name) is not an ssl key NetHost knows; it is ignored")
                }
            }
        }

        private func string(_ name: String, _ value: ConfigValue) throws(Problem) -> String {
            guard case .string(let text) = value else {
                throw Problem("\(option).\(name): expected a string, got \(value.typeName)")
            }
            return text
        }

        private func path(_ name: String, _ value: ConfigValue) throws(Problem) -> String {
            let text = try string(name, value)
            guard !text.isEmpty else { throw Problem("\(option).\(name) is empty") }
            return text.hasPrefix("/") ? text : baseDirectory + "/" + text
        }

        /// A string, or a list of strings (Prosody joins lists with ':'), read as every
        /// list of names is (`ConfigValue.stringList()`); the order of ciphers matters,
        /// so a set, which has none, is refused.
        private func stringList(_ name: String, _ value: ConfigValue) throws(Problem) -> [String] {
            if case .table(let table) = value, !table.map.isEmpty {
                throw Problem("\(option).\(name): expected a string or a list of strings, got a table with named keys")
            }
            do {
                return try value.stringList()
            } catch {
                throw Problem("\(option).\(name): \(error)")
            }
        }

        private mutating func readCiphers(_ value: ConfigValue) throws(Problem) {
            let text = try stringList("ciphers", value).joined(separator: ":")
            let rule: CipherRule
            do {
                rule = try CipherRule(text)
            } catch {
                throw Problem("\(option).ciphers: \(error)")
            }
            layer.ciphers = rule
            if !rule.unknownNames.isEmpty {
                notes.append("\(option).ciphers: \(rule.unknownNames.joined(separator: ", ")) not known to NetHost's TLS library (BoringSSL), skipped")
            }
            let weak = rule.withoutForwardSecrecy
            if !weak.isEmpty {
                notes.append("\(option).ciphers selects ciphers without forward secrecy: \(weak.map(\.name).joined(separator: ", ")) "
                    + "(the default selects ECDHE ciphers only)")
            }
        }

        private mutating func curves(_ name: String, _ values: [ConfigValue]) throws(Problem) -> [Curve] {
            var result: [Curve] = []
            var unsupported: [String] = []
            for value in values {
                let text = try string(name, value)
                for part in text.split(separator: ":").map(String.init) {
                    if let curve = TLSOptions.curve(named: part) {
                        if !result.contains(curve) { result.append(curve) }
                    } else if ["x448", "ffdhe2048", "ffdhe3072", "ffdhe4096"].contains(part.lowercased()) {
                        unsupported.append(part)
                    } else {
                        throw Problem("\(option).\(name): unknown curve \"\(part)\"; NetHost knows X25519, prime256v1 (P-256), "
                            + "secp384r1 (P-384), secp521r1 (P-521) and X25519MLKEM768")
                    }
                }
            }
            if !unsupported.isEmpty {
                notes.append("\(option).\(name): \(unsupported.joined(separator: ", ")) not offered by NetHost's TLS library (BoringSSL), skipped")
            }
            guard !result.isEmpty else {
                throw Problem("\(option).\(name) leaves no curve that NetHost's TLS library offers")
            }
            return result
        }

        private func verify(_ value: ConfigValue) throws(Problem) -> ClientCertificates {
            let words: [String]
            switch value {
            case .boolean(let on): words = on ? ["peer"] : ["none"]
            default: words = try stringList("verify", value)
            }
            var peer = false
            var failIfNone = false
            for word in words {
                switch word {
                case "none": break
                case "peer": peer = true
                case "fail_if_no_peer_cert": failIfNone = true
                case "client_once": break  // only matters for renegotiation, which NetHost refuses
                default:
                    throw Problem("\(option).verify: unknown value \"\(word)\"; use \"none\", \"peer\" or { \"peer\", \"fail_if_no_peer_cert\" }")
                }
            }
            // As OpenSSL: fail_if_no_peer_cert means nothing without peer.
            return peer ? (failIfNone ? .required : .verifiedIfPresented) : .notRequested
        }

        private mutating func readOptions(_ value: ConfigValue) throws(Problem) {
            var entries: [(String, Bool)] = []
            switch value {
            case .string(let text): entries = [(text, true)]
            case .table(let table):
                for item in table.array {
                    guard case .string(let text) = item else {
                        throw Problem("\(option).options: expected option names, found \(item.typeName)")
                    }
                    entries.append((text, true))
                }
                for (key, flag) in table.map.sorted(by: { $0.key < $1.key }) {
                    guard case .string(let text) = key, case .boolean(let on) = flag else {
                        throw Problem("\(option).options: expected { \"no_ticket\", ... } or { no_ticket = true }, found [\(key.text)] = \(flag.typeName)")
                    }
                    entries.append((text, on))
                }
            default:
                throw Problem("\(option).options: expected a list of option names, got \(value.typeName)")
            }
            var ignored: [String] = []
            for (name, on) in entries {
                if name.hasPrefix("no_tlsv1") {
                    guard TLSOptions.Version.allCases.contains(where: { "no_\($0.prosodyName)" == name }) else {
                        throw Problem("\(option).options: unknown option \"\(name)\"")
                    }
                    layer.options[name] = on
                } else if TLSOptions.optionsAlwaysOn.contains(name) {
                    if !on { ignored.append("\(name) = false (BoringSSL always applies it)") }
                } else {
                    ignored.append(name)
                }
            }
            if !ignored.isEmpty {
                notes.append("\(option).options: \(ignored.joined(separator: ", ")) not honoured (NetHost's TLS library, BoringSSL through "
                    + "swift-nio-ssl, has no such switch); no_tlsv1, no_tlsv1_1, no_tlsv1_2, no_tlsv1_3 are")
            }
        }
    }
}

extension ConfigKey {
    /// The key as a config file would write it inside brackets.
    var text: String {
        switch self {
        case .integer(let number): "\(number)"
        case .string(let name): "\"\(name)\""
        }
    }
}

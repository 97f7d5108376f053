/// Prosody's `ciphers` option is an OpenSSL cipher string ("HIGH+kEECDH:!aNULL", or a
/// list joined with ':'). NetHost's TLS library is BoringSSL, which reads a smaller
/// language over fewer ciphers, and swift-nio-ssl stops the process (a precondition)
/// when BoringSSL refuses the string or it selects nothing. So the string is
/// evaluated here first, by the rules of BoringSSL's `ssl_cipher_process_rulestr`
/// (non-strict mode, as `SSL_CTX_set_cipher_list` uses), over BoringSSL's own
/// cipher table; the result is the list of cipher names NetHost hands on, or an
/// error in words. Pure: no TLS library involved.
///
/// TLS 1.3 suites are not chosen by this string (BoringSSL offers its three fixed ones).
public struct CipherRule: Sendable, Equatable {
    /// The string as configured.
    public let text: String
    /// The TLS 1.2-and-earlier ciphers it selects, in order of preference (OpenSSL names).
    public let ciphers: [Cipher]
    /// Names the string asks for that BoringSSL does not know (DHE ciphers, CAMELLIA,
    /// aliases such as `kEDH`): skipped, as BoringSSL skips them. Names only taken
    /// away (`!aNULL`) are not listed: there is nothing of them to take away.
    public let unknownNames: [String]

    public struct Problem: Error, CustomStringConvertible, Sendable, Equatable {
        public let description: String
    }

    /// Evaluates `text`; throws when BoringSSL would refuse it or when it selects no cipher.
    public init(_ text: String) throws(Problem) {
        var evaluation = Evaluation()
        var rule = Substring(text)
        if rule.hasPrefix("DEFAULT") {
            try evaluation.process(Substring("ALL"))
            rule = rule.dropFirst(7)
            if rule.first == ":" { rule = rule.dropFirst() }
        }
        if !rule.isEmpty {
            try evaluation.process(rule)
        }
        let selected = evaluation.order.filter { evaluation.active[$0] }.map { Cipher.all[$0] }
        guard !selected.isEmpty else {
            let unknown = evaluation.unknownNames.isEmpty
                ? "" : " (not known to BoringSSL: \(evaluation.unknownNames.joined(separator: ", ")))"
            throw Problem(description: "'\(text)' selects no cipher that NetHost's TLS library (BoringSSL) offers\(unknown)")
        }
        self.text = text
        self.ciphers = selected
        self.unknownNames = evaluation.unknownNames
    }

    /// The selected ciphers as an OpenSSL cipher string of exact names.
    public var openSSLString: String { ciphers.map(\.name).joined(separator: ":") }

    /// Selected ciphers without forward secrecy that a client can get: RSA key
    /// exchange. (Plain PSK ciphers lack it too, but NetHost configures no pre-shared
    /// keys, so no handshake can use them.)
    public var withoutForwardSecrecy: [Cipher] { ciphers.filter { $0.keyExchange == Bits.kRSA } }

    /// Whether some selected cipher works below TLS 1.2.
    public var hasCipherBeforeTLS12: Bool { ciphers.contains { !$0.needsTLS12 } }
}

extension CipherRule {
    /// One TLS 1.2-and-earlier cipher of BoringSSL's table (`kCiphers` in ssl_cipher.cc).
    public struct Cipher: Sendable, Equatable, Hashable, CustomStringConvertible {
        public let name: String
        public let standardName: String
        public let id: UInt16
        let keyExchange: UInt32
        let authentication: UInt32
        let encryption: UInt32
        let mac: UInt32
        /// Uses a SHA-256/384 PRF, so it needs TLS 1.2.
        let needsTLS12: Bool

        public var description: String { name }

        var isDeprecated: Bool { id == 0xC023 || id == 0xC027 || encryption == Bits.tripleDES }

        /// SSL_CIPHER_get_bits.
        var strengthBits: Int {
            switch encryption {
            case Bits.aes128, Bits.aes128GCM: 128
            case Bits.tripleDES: 112
            default: 256
            }
        }

        /// In BoringSSL's default order on a machine with AES instructions.
        static let all: [Cipher] = [
            Cipher("ECDHE-ECDSA-AES128-GCM-SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", 0xC02B, Bits.kECDHE, Bits.aECDSA, Bits.aes128GCM, Bits.aead, true),
            Cipher("ECDHE-RSA-AES128-GCM-SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", 0xC02F, Bits.kECDHE, Bits.aRSASign, Bits.aes128GCM, Bits.aead, true),
            Cipher("ECDHE-ECDSA-AES256-GCM-SHA384", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", 0xC02C, Bits.kECDHE, Bits.aECDSA, Bits.aes256GCM, Bits.aead, true),
            Cipher("ECDHE-RSA-AES256-GCM-SHA384", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", 0xC030, Bits.kECDHE, Bits.aRSASign, Bits.aes256GCM, Bits.aead, true),
            Cipher("ECDHE-ECDSA-CHACHA20-POLY1305", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", 0xCCA9, Bits.kECDHE, Bits.aECDSA, Bits.chacha20, Bits.aead, true),
            Cipher("ECDHE-RSA-CHACHA20-POLY1305", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", 0xCCA8, Bits.kECDHE, Bits.aRSASign, Bits.chacha20, Bits.aead, true),
            Cipher("ECDHE-PSK-CHACHA20-POLY1305", "TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256", 0xCCAC, Bits.kECDHE, Bits.aPSK, Bits.chacha20, Bits.aead, true),
            Cipher("ECDHE-ECDSA-AES128-SHA", "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", 0xC009, Bits.kECDHE, Bits.aECDSA, Bits.aes128, Bits.sha1, false),
            Cipher("ECDHE-RSA-AES128-SHA", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", 0xC013, Bits.kECDHE, Bits.aRSASign, Bits.aes128, Bits.sha1, false),
            Cipher("ECDHE-PSK-AES128-CBC-SHA", "TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA", 0xC035, Bits.kECDHE, Bits.aPSK, Bits.aes128, Bits.sha1, false),
            Cipher("ECDHE-ECDSA-AES256-SHA", "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", 0xC00A, Bits.kECDHE, Bits.aECDSA, Bits.aes256, Bits.sha1, false),
            Cipher("ECDHE-RSA-AES256-SHA", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", 0xC014, Bits.kECDHE, Bits.aRSASign, Bits.aes256, Bits.sha1, false),
            Cipher("ECDHE-PSK-AES256-CBC-SHA", "TLS_ECDHE_PSK_WITH_AES_256_CBC_SHA", 0xC036, Bits.kECDHE, Bits.aPSK, Bits.aes256, Bits.sha1, false),
            Cipher("ECDHE-ECDSA-AES128-SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", 0xC023, Bits.kECDHE, Bits.aECDSA, Bits.aes128, Bits.sha256, true),
            Cipher("ECDHE-RSA-AES128-SHA256", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", 0xC027, Bits.kECDHE, Bits.aRSASign, Bits.aes128, Bits.sha256, true),
            Cipher("AES128-GCM-SHA256", "TLS_RSA_WITH_AES_128_GCM_SHA256", 0x009C, Bits.kRSA, Bits.aRSADecrypt, Bits.aes128GCM, Bits.aead, true),
            Cipher("AES256-GCM-SHA384", "TLS_RSA_WITH_AES_256_GCM_SHA384", 0x009D, Bits.kRSA, Bits.aRSADecrypt, Bits.aes256GCM, Bits.aead, true),
            Cipher("AES128-SHA", "TLS_RSA_WITH_AES_128_CBC_SHA", 0x002F, Bits.kRSA, Bits.aRSADecrypt, Bits.aes128, Bits.sha1, false),
            Cipher("PSK-AES128-CBC-SHA", "TLS_PSK_WITH_AES_128_CBC_SHA", 0x008C, Bits.kPSK, Bits.aPSK, Bits.aes128, Bits.sha1, false),
            Cipher("AES256-SHA", "TLS_RSA_WITH_AES_256_CBC_SHA", 0x0035, Bits.kRSA, Bits.aRSADecrypt, Bits.aes256, Bits.sha1, false),
            Cipher("PSK-AES256-CBC-SHA", "TLS_PSK_WITH_AES_256_CBC_SHA", 0x008D, Bits.kPSK, Bits.aPSK, Bits.aes256, Bits.sha1, false),
            Cipher("DES-CBC3-SHA", "TLS_RSA_WITH_3DES_EDE_CBC_SHA", 0x000A, Bits.kRSA, Bits.aRSADecrypt, Bits.tripleDES, Bits.sha1, false),
        ]

        /// TLS 1.3 suites: a name in the string that matches one selects nothing, as in BoringSSL.
        static let tls13Names: Set<String> = ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"]

        private init(_ name: String, _ standardName: String, _ id: UInt16, _ keyExchange: UInt32, _ authentication: UInt32,
                     _ encryption: UInt32, _ mac: UInt32, _ needsTLS12: Bool) {
            self.name = name
            self.standardName = standardName
            self.id = id
            self.keyExchange = keyExchange
            self.authentication = authentication
            self.encryption = encryption
            self.mac = mac
            self.needsTLS12 = needsTLS12
        }
    }

    /// BoringSSL's algorithm bits (ssl/internal.h).
    enum Bits {
        static let kRSA: UInt32 = 0x1, kECDHE: UInt32 = 0x2, kPSK: UInt32 = 0x4
        static let aRSASign: UInt32 = 0x1, aRSADecrypt: UInt32 = 0x2, aECDSA: UInt32 = 0x4, aPSK: UInt32 = 0x8
        static let tripleDES: UInt32 = 0x1, aes128: UInt32 = 0x2, aes256: UInt32 = 0x4
        static let aes128GCM: UInt32 = 0x8, aes256GCM: UInt32 = 0x10, chacha20: UInt32 = 0x20
        static let aes: UInt32 = aes128 | aes256 | aes128GCM | aes256GCM
        static let sha1: UInt32 = 0x1, sha256: UInt32 = 0x2, aead: UInt32 = 0x4
        static let all: UInt32 = ~0
    }

    /// A selector: the masks an alias (or a `+` combination of aliases) matches.
    struct Alias {
        var keyExchange = Bits.all, authentication = Bits.all, encryption = Bits.all, mac = Bits.all
        /// 0: any; 1: only ciphers usable before TLS 1.2 ("SSLv3", "TLSv1"); 2: only TLS 1.2 ones ("TLSv1.2").
        var version = 0
        var includeDeprecated = false

        /// kCipherAliases.
        static let named: [String: Alias] = [
            "ALL": Alias(),
            "kRSA": Alias(keyExchange: Bits.kRSA),
            "kECDHE": Alias(keyExchange: Bits.kECDHE), "kEECDH": Alias(keyExchange: Bits.kECDHE), "ECDH": Alias(keyExchange: Bits.kECDHE),
            "kPSK": Alias(keyExchange: Bits.kPSK),
            "aRSA": Alias(authentication: Bits.aRSASign | Bits.aRSADecrypt),
            "aECDSA": Alias(authentication: Bits.aECDSA), "ECDSA": Alias(authentication: Bits.aECDSA),
            "aPSK": Alias(authentication: Bits.aPSK),
            "ECDHE": Alias(keyExchange: Bits.kECDHE), "EECDH": Alias(keyExchange: Bits.kECDHE),
            "RSA": Alias(keyExchange: Bits.kRSA, authentication: Bits.aRSASign | Bits.aRSADecrypt),
            "PSK": Alias(keyExchange: Bits.kPSK, authentication: Bits.aPSK),
            "3DES": Alias(encryption: Bits.tripleDES, includeDeprecated: true),
            "AES128": Alias(encryption: Bits.aes128 | Bits.aes128GCM),
            "AES256": Alias(encryption: Bits.aes256 | Bits.aes256GCM),
            "AES": Alias(encryption: Bits.aes),
            "AESGCM": Alias(encryption: Bits.aes128GCM | Bits.aes256GCM),
            "CHACHA20": Alias(encryption: Bits.chacha20),
            "SHA1": Alias(mac: Bits.sha1), "SHA": Alias(mac: Bits.sha1),
            "SSLv3": Alias(version: 1), "TLSv1": Alias(version: 1), "TLSv1.2": Alias(version: 2),
            "HIGH": Alias(), "FIPS": Alias(),
        ]

        var matchesNothing: Bool {
            version == 0 && (keyExchange == 0 || authentication == 0 || encryption == 0 || mac == 0)
        }

        func matches(_ cipher: Cipher) -> Bool {
            keyExchange & cipher.keyExchange != 0 && authentication & cipher.authentication != 0
                && encryption & cipher.encryption != 0 && mac & cipher.mac != 0
                && (version == 0 || (version == 2) == cipher.needsTLS12)
                && (includeDeprecated || !cipher.isDeprecated)
        }
    }

    /// The state of one evaluation: BoringSSL's linked list of ciphers as an ordered
    /// array of indices into `Cipher.all`, with an active flag per cipher.
    struct Evaluation {
        var order = Array(Cipher.all.indices)
        var active = [Bool](repeating: false, count: Cipher.all.count)
        var unknownNames: [String] = []

        enum Rule { case add, delete, order, kill, special }

        private static func isWordCharacter(_ c: Character) -> Bool {
            (c.isASCII && (c.isLetter || c.isNumber)) || c == "-" || c == "." || c == "_"
        }

        private static func isSeparator(_ c: Character) -> Bool { c == ":" || c == " " || c == ";" || c == "," }

        mutating func process(_ text: Substring) throws(Problem) {
            var rest = text[...]
            var inGroup = false
            var hasGroup = false
            while let first = rest.first {
                var rule: Rule
                if inGroup {
                    if first == "]" {
                        inGroup = false
                        rest = rest.dropFirst()
                        continue
                    }
                    if first == "|" {
                        rest = rest.dropFirst()
                        continue
                    }
                    guard first.isASCII, first.isLetter || first.isNumber else {
                        throw Problem(description: "'\(first)' cannot appear inside [...] in a cipher string")
                    }
                    rule = .add
                } else {
                    switch first {
                    case "-": rule = .delete; rest = rest.dropFirst()
                    case "+": rule = .order; rest = rest.dropFirst()
                    case "!": rule = .kill; rest = rest.dropFirst()
                    case "@": rule = .special; rest = rest.dropFirst()
                    case "[":
                        inGroup = true
                        hasGroup = true
                        rest = rest.dropFirst()
                        continue
                    default: rule = .add
                    }
                }
                if hasGroup, rule != .add {
                    throw Problem(description: "a cipher string with [...] groups cannot also use -, +, ! or @")
                }
                // As in BoringSSL, only a separator where a rule would start is skipped:
                // after an operator ("-:") it is an error below.
                if rule == .add, Self.isSeparator(first) {
                    rest = rest.dropFirst()
                    continue
                }
                var multi = false
                var exact: Int?
                var alias = Alias()
                alias.includeDeprecated = rule != .add
                var skip = false
                var word: Substring = ""
                while true {
                    let end = rest.firstIndex { !Self.isWordCharacter($0) } ?? rest.endIndex
                    word = rest[..<end]
                    rest = rest[end...]
                    guard !word.isEmpty else {
                        let shown = rest.first.map { "'\($0)'" } ?? "the end"
                        throw Problem(description: "unexpected \(shown) in the cipher string")
                    }
                    if rule == .special { break }
                    if !multi, rest.first != "+" {
                        if let index = Cipher.all.firstIndex(where: { $0.name == word || $0.standardName == word }) {
                            exact = index
                        } else if Cipher.tls13Names.contains(String(word)) {
                            skip = true
                        }
                    }
                    if exact == nil, !skip || multi {
                        if let named = Alias.named[String(word)] {
                            alias.keyExchange &= named.keyExchange
                            alias.authentication &= named.authentication
                            alias.encryption &= named.encryption
                            alias.mac &= named.mac
                            alias.includeDeprecated = alias.includeDeprecated || named.includeDeprecated
                            if alias.version != 0, alias.version != named.version {
                                skip = true
                            } else {
                                alias.version = named.version
                            }
                        } else {
                            skip = true
                            // Taking away what BoringSSL does not have ("!aNULL", "-kEDH") leaves
                            // the list as meant; only asking for it goes unheeded.
                            if rule == .add || rule == .order, !unknownNames.contains(String(word)) {
                                unknownNames.append(String(word))
                            }
                        }
                    }
                    guard rest.first == "+" else { break }
                    rest = rest.dropFirst()
                    multi = true
                }
                if rule == .special {
                    guard word == "STRENGTH" else {
                        throw Problem(description: "@\(word) is not a cipher string command BoringSSL knows (only @STRENGTH)")
                    }
                    sortByStrength()
                    while let next = rest.first, !Self.isSeparator(next) { rest = rest.dropFirst() }
                } else if !skip {
                    apply(rule, exact: exact, alias: alias)
                }
            }
            if inGroup {
                throw Problem(description: "a '[' group in the cipher string is not closed")
            }
        }

        /// ssl_cipher_apply_rule, on the array.
        private mutating func apply(_ rule: Rule, exact: Int?, alias: Alias) {
            if exact == nil, alias.matchesNothing { return }
            let selected = order.filter { index in
                if let exact { return index == exact }
                return alias.matches(Cipher.all[index])
            }
            switch rule {
            case .add:
                for index in selected where !active[index] {
                    moveToEnd(index)
                    active[index] = true
                }
            case .order:
                for index in selected where active[index] { moveToEnd(index) }
            case .delete:
                // Walked from the tail; each goes to the head, so they keep their order.
                for index in selected.reversed() where active[index] {
                    order.removeAll { $0 == index }
                    order.insert(index, at: 0)
                    active[index] = false
                }
            case .kill:
                for index in selected {
                    order.removeAll { $0 == index }
                    active[index] = false
                }
            case .special:
                break
            }
        }

        private mutating func moveToEnd(_ index: Int) {
            order.removeAll { $0 == index }
            order.append(index)
        }

        /// ssl_cipher_strength_sort: active ciphers by descending strength, stable.
        private mutating func sortByStrength() {
            let strengths = Set(order.filter { active[$0] }.map { Cipher.all[$0].strengthBits })
            for bits in strengths.sorted(by: >) {
                for index in order where active[index] && Cipher.all[index].strengthBits == bits {
                    moveToEnd(index)
                }
            }
        }
    }
}

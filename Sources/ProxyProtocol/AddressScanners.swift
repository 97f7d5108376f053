// Byte-at-a-time recognisers for the address and port fields of a PROXY v1
// line. Each `feed` answers at once whether the bytes so far can still begin
// a valid field, so the v1 parser rejects a bad line at its first bad byte and
// never looks at a byte twice. `finish` is called at the field's terminator.

@inline(__always)
func decimalDigit(_ byte: UInt8) -> UInt32? {
    byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") ? UInt32(byte &- UInt8(ascii: "0")) : nil
}

@inline(__always)
func hexDigit(_ byte: UInt8) -> UInt32? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt32(byte &- UInt8(ascii: "0"))
    case UInt8(ascii: "a")...UInt8(ascii: "f"): UInt32(byte &- UInt8(ascii: "a") &+ 10)
    case UInt8(ascii: "A")...UInt8(ascii: "F"): UInt32(byte &- UInt8(ascii: "A") &+ 10)
    default: nil
    }
}

/// A decimal number without leading zeros, up to `maximum`.
struct DecimalScanner: Sendable {
    private let maximum: UInt32
    private var value: UInt32 = 0
    private(set) var digits = 0

    init(maximum: UInt32) {
        self.maximum = maximum
    }

    /// False once the bytes can no longer be such a number.
    mutating func feed(_ byte: UInt8) -> Bool {
        guard let digit = decimalDigit(byte) else { return false }
        if digits == 1 && value == 0 { return false }  // leading zero
        value = value * 10 + digit
        digits += 1
        return value <= maximum
    }

    func finish() -> UInt32? {
        digits > 0 ? value : nil
    }
}

/// A TCP port: 0...65535, decimal, no leading zeros.
typealias PortScanner = DecimalScanner

extension DecimalScanner {
    static func port() -> DecimalScanner { DecimalScanner(maximum: 65535) }
}

/// A canonical dotted quad.
struct IPv4Scanner: Sendable {
    private var value: UInt32 = 0
    private var completedOctets = 0
    private var octet = DecimalScanner(maximum: 255)

    init() {}

    /// Continues after a first octet read elsewhere (the tail of an IPv6
    /// address) and its dot.
    init(afterFirstOctet first: UInt32) {
        value = first
        completedOctets = 1
    }

    mutating func feed(_ byte: UInt8) -> Bool {
        if byte == UInt8(ascii: ".") {
            guard completedOctets < 3, let octetValue = octet.finish() else { return false }
            value = value << 8 | octetValue
            completedOctets += 1
            octet = DecimalScanner(maximum: 255)
            return true
        }
        return octet.feed(byte)
    }

    func finish() -> IPv4Address? {
        guard completedOctets == 3, let last = octet.finish() else { return nil }
        return IPv4Address(value << 8 | last)
    }
}

/// IPv6 text: groups of 1...4 hex digits separated by `:`, at most one `::`
/// standing for one or more zero groups, optionally ending in a dotted quad
/// worth two groups; exactly 128 bits in all.
struct IPv6Scanner: Sendable {
    private enum State: Sendable {
        case start
        case leadingColon  // a first ':' that must become '::'
        case group  // inside a group
        case colon  // after a single ':' that follows a group
        case doubleColon  // right after '::'
        case ipv4(IPv4Scanner)  // inside the dotted-quad tail
    }

    private var state = State.start
    private var groups = IPv6Address(high: 0, low: 0)
    private var groupCount = 0
    /// Number of groups written before `::`, if it was seen.
    private var gapIndex: Int?
    // The group being read, as hex and (while it could be one) as a decimal octet.
    private var token: UInt32 = 0
    private var tokenDigits = 0
    private var tokenDecimal = DecimalScanner(maximum: 255)
    private var tokenIsDecimal = true

    init() {}

    private var maximumGroups: Int { gapIndex == nil ? 8 : 7 }

    private mutating func startGroup(_ byte: UInt8, _ digit: UInt32) -> Bool {
        guard groupCount < maximumGroups else { return false }
        token = digit
        tokenDigits = 1
        tokenDecimal = DecimalScanner(maximum: 255)
        tokenIsDecimal = tokenDecimal.feed(byte)
        state = .group
        return true
    }

    private mutating func pushToken() {
        groups[group: groupCount] = UInt16(truncatingIfNeeded: token)
        groupCount += 1
    }

    mutating func feed(_ byte: UInt8) -> Bool {
        switch state {
        case .ipv4(var scanner):
            let accepted = scanner.feed(byte)
            state = .ipv4(scanner)
            return accepted
        case .start:
            if byte == UInt8(ascii: ":") {
                state = .leadingColon
                return true
            }
            guard let digit = hexDigit(byte) else { return false }
            return startGroup(byte, digit)
        case .leadingColon:
            guard byte == UInt8(ascii: ":") else { return false }
            gapIndex = 0
            state = .doubleColon
            return true
        case .colon:
            if byte == UInt8(ascii: ":") {
                guard gapIndex == nil else { return false }  // a second '::'
                gapIndex = groupCount
                state = .doubleColon
                return true
            }
            guard let digit = hexDigit(byte) else { return false }
            return startGroup(byte, digit)
        case .doubleColon:
            guard let digit = hexDigit(byte) else { return false }  // ':::' or junk
            return startGroup(byte, digit)
        case .group:
            if let digit = hexDigit(byte) {
                guard tokenDigits < 4 else { return false }
                token = token << 4 | digit
                tokenDigits += 1
                if tokenIsDecimal { tokenIsDecimal = tokenDecimal.feed(byte) }
                return true
            }
            if byte == UInt8(ascii: ":") {
                pushToken()
                // Another group (or '::') must still fit.
                guard groupCount < maximumGroups else { return false }
                state = .colon
                return true
            }
            if byte == UInt8(ascii: ".") {
                // The token was the first octet of a dotted-quad tail, which
                // takes the last two groups.
                guard tokenIsDecimal, let first = tokenDecimal.finish() else { return false }
                let fits = gapIndex == nil ? groupCount == 6 : groupCount <= 5
                guard fits else { return false }
                state = .ipv4(IPv4Scanner(afterFirstOctet: first))
                return true
            }
            return false
        }
    }

    func finish() -> IPv6Address? {
        var scanner = self
        switch state {
        case .start, .leadingColon, .colon:
            return nil
        case .doubleColon:
            break
        case .group:
            scanner.pushToken()
        case .ipv4(let tail):
            guard let v4 = tail.finish() else { return nil }
            scanner.token = v4.value >> 16
            scanner.pushToken()
            scanner.token = v4.value & 0xFFFF
            scanner.pushToken()
        }
        return scanner.address()
    }

    private func address() -> IPv6Address? {
        guard let gap = gapIndex else {
            return groupCount == 8 ? groups : nil
        }
        guard groupCount <= 7 else { return nil }
        // Move the groups written after '::' to the end.
        var result = IPv6Address(high: 0, low: 0)
        for index in 0..<gap { result[group: index] = groups[group: index] }
        let shift = 8 - groupCount
        for index in gap..<groupCount { result[group: index + shift] = groups[group: index] }
        return result
    }
}

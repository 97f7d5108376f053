/// An IPv4 address.
public struct IPv4Address: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The address as a number: `a.b.c.d` is `a << 24 | b << 16 | c << 8 | d`.
    public var value: UInt32

    public init(_ value: UInt32) {
        self.value = value
    }

    public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        value = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
    }

    /// Parses the canonical dotted quad of PROXY v1: exactly four decimal
    /// numbers 0...255 without leading zeros. Returns nil for anything else.
    public init?(_ text: some StringProtocol) {
        var scanner = IPv4Scanner()
        for byte in text.utf8 where !scanner.feed(byte) { return nil }
        guard let address = scanner.finish() else { return nil }
        self = address
    }

    /// The four bytes in network order.
    public var bytes: [UInt8] {
        [UInt8(truncatingIfNeeded: value >> 24), UInt8(truncatingIfNeeded: value >> 16),
         UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value)]
    }

    /// Dotted quad, e.g. `192.0.2.1`. Written on the stack: at most 15 bytes, which
    /// Swift keeps inside the String itself, so this allocates nothing.
    public var description: String {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 15) { text in
            var count = 0
            for shift in stride(from: 24, through: 0, by: -8) {
                if shift != 24 {
                    text[count] = UInt8(ascii: ".")
                    count += 1
                }
                let octet = UInt8(truncatingIfNeeded: value >> UInt32(shift))
                if octet >= 100 {
                    text[count] = UInt8(ascii: "0") + octet / 100
                    count += 1
                }
                if octet >= 10 {
                    text[count] = UInt8(ascii: "0") + octet / 10 % 10
                    count += 1
                }
                text[count] = UInt8(ascii: "0") + octet % 10
                count += 1
            }
            return String(decoding: UnsafeBufferPointer(rebasing: text[..<count]), as: UTF8.self)
        }
    }

    func appendText(to text: inout [UInt8]) {
        for shift in stride(from: 24, through: 0, by: -8) {
            if shift != 24 { text.append(UInt8(ascii: ".")) }
            appendDecimal(UInt32(UInt8(truncatingIfNeeded: value >> UInt32(shift))), to: &text)
        }
    }

    public static func < (lhs: IPv4Address, rhs: IPv4Address) -> Bool { lhs.value < rhs.value }
}

/// An IPv6 address, stored as two 64-bit halves in network order.
public struct IPv6Address: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Bits 0...63 (groups 0...3).
    public var high: UInt64
    /// Bits 64...127 (groups 4...7).
    public var low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// Builds an address from exactly eight 16-bit groups.
    public init?(groups: some Collection<UInt16>) {
        guard groups.count == 8 else { return nil }
        self.init(high: 0, low: 0)
        for (index, group) in groups.enumerated() { self[group: index] = group }
    }

    /// Builds an address from exactly sixteen bytes in network order.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 16 else { return nil }
        self.init(high: 0, low: 0)
        for (index, byte) in bytes.enumerated() { setByte(index, byte) }
    }

    /// The IPv4-mapped address `::ffff:a.b.c.d`.
    public init(ipv4Mapped address: IPv4Address) {
        self.init(high: 0, low: 0x0000_FFFF_0000_0000 | UInt64(address.value))
    }

    /// Parses IPv6 text as PROXY v1 allows it: groups of 1...4 hex digits,
    /// at most one `::`, an optional dotted-quad tail, exactly 128 bits.
    public init?(_ text: some StringProtocol) {
        var scanner = IPv6Scanner()
        for byte in text.utf8 where !scanner.feed(byte) { return nil }
        guard let address = scanner.finish() else { return nil }
        self = address
    }

    /// Group `index` (0...7), most significant first.
    public subscript(group index: Int) -> UInt16 {
        get {
            precondition((0..<8).contains(index), "IPv6 group index out of range")
            let half = index < 4 ? high : low
            return UInt16(truncatingIfNeeded: half >> UInt64(48 - 16 * (index % 4)))
        }
        set {
            precondition((0..<8).contains(index), "IPv6 group index out of range")
            let shift = UInt64(48 - 16 * (index % 4))
            let mask = ~(UInt64(0xFFFF) << shift)
            if index < 4 {
                high = high & mask | UInt64(newValue) << shift
            } else {
                low = low & mask | UInt64(newValue) << shift
            }
        }
    }

    /// The sixteen bytes in network order.
    public var bytes: [UInt8] {
        (0..<16).map { byte($0) }
    }

    /// The embedded IPv4 address if this is IPv4-mapped (`::ffff:0:0/96`).
    public var ipv4Mapped: IPv4Address? {
        guard high == 0, low >> 32 == 0x0000_FFFF else { return nil }
        return IPv4Address(UInt32(truncatingIfNeeded: low))
    }

    func byte(_ index: Int) -> UInt8 {
        let half = index < 8 ? high : low
        return UInt8(truncatingIfNeeded: half >> UInt64(56 - 8 * (index % 8)))
    }

    mutating func setByte(_ index: Int, _ byte: UInt8) {
        let shift = UInt64(56 - 8 * (index % 8))
        let mask = ~(UInt64(0xFF) << shift)
        if index < 8 {
            high = high & mask | UInt64(byte) << shift
        } else {
            low = low & mask | UInt64(byte) << shift
        }
    }

    /// RFC 5952 text: lower-case hex without leading zeros, the longest run
    /// (leftmost on a tie) of two or more zero groups as `::`, and the mixed
    /// form `::ffff:a.b.c.d` for IPv4-mapped addresses.
    public var description: String {
        var text: [UInt8] = []
        text.reserveCapacity(39)
        appendText(to: &text)
        return String(decoding: text, as: UTF8.self)
    }

    func appendText(to text: inout [UInt8]) {
        if let v4 = ipv4Mapped {
            text.append(contentsOf: "::ffff:".utf8)
            v4.appendText(to: &text)
            return
        }
        // Longest run of zero groups, at least two long.
        var bestStart = -1, bestLength = 0
        var runStart = -1
        for index in 0...8 {
            if index < 8 && self[group: index] == 0 {
                if runStart < 0 { runStart = index }
            } else if runStart >= 0 {
                let length = index - runStart
                if length > bestLength { bestStart = runStart; bestLength = length }
                runStart = -1
            }
        }
        if bestLength < 2 { bestStart = -1 }
        var index = 0
        var needsColon = false
        while index < 8 {
            if index == bestStart {
                text.append(contentsOf: "::".utf8)
                index += bestLength
                needsColon = false
                continue
            }
            if needsColon { text.append(UInt8(ascii: ":")) }
            appendHex(self[group: index], to: &text)
            needsColon = true
            index += 1
        }
    }

    public static func < (lhs: IPv6Address, rhs: IPv6Address) -> Bool {
        (lhs.high, lhs.low) < (rhs.high, rhs.low)
    }
}

func appendDecimal(_ value: UInt32, to text: inout [UInt8]) {
    if value >= 10 { appendDecimal(value / 10, to: &text) }
    text.append(UInt8(ascii: "0") + UInt8(value % 10))
}

func appendHex(_ value: UInt16, to text: inout [UInt8]) {
    let digits: StaticString = "0123456789abcdef"
    var started = false
    for shift in stride(from: 12, through: 0, by: -4) {
        let nibble = Int((value >> UInt16(shift)) & 0xF)
        if nibble != 0 || started || shift == 0 {
            started = true
            text.append(digits.utf8Start[nibble])
        }
    }
}

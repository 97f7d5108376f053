/// The binary header (spec 2.2):
///
///     12 bytes  signature \r\n\r\n\0\r\nQUIT\n
///      1 byte   version (high nibble, must be 2) and command (low nibble)
///      1 byte   address family (high nibble) and transport (low nibble)
///      2 bytes  length of the rest, big endian
///      ...      address block, then TLVs up to the declared length
///
/// The 16-byte prefix is checked byte by byte as it arrives, so a wrong
/// signature, version, command or family fails at its first bad byte and a
/// declared length over the limit fails before the body comes. The body is
/// read once, when all of it is there.
struct V2Parser: Sendable {
    static let signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]
    static let prefixLength = 16
    static let unixPathLength = 108

    let maximumHeaderLength: Int
    /// Prefix bytes examined so far (0...16); the next call resumes here.
    private(set) var offset = 0
    private var command = ProxyHeader.Command.proxy
    private var familyByte: UInt8 = 0
    private var length = 0
    /// CRC32C of the prefix, kept so a checksum never re-reads it.
    private var prefixChecksum = CRC32C()

    init(maximumHeaderLength: Int) {
        self.maximumHeaderLength = maximumHeaderLength
    }

    mutating func parse(_ bytes: UnsafeRawBufferPointer) throws(ProxyHeaderError) -> ProxyHeaderParser.ParseResult {
        while offset < Self.prefixLength && offset < bytes.count {
            try examinePrefixByte(bytes[offset])
            prefixChecksum.update(UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + 1]))
            offset += 1
        }
        guard offset == Self.prefixLength else { return .needMoreData }
        let total = Self.prefixLength + length
        guard bytes.count >= total else { return .needMoreData }
        let header: ProxyHeader
        switch command {
        case .proxy:
            header = try parseBody(bytes, total: total)
        case .local:
            // The receiver must accept LOCAL and ignore its address block:
            // read what can be read, drop what cannot. A wrong checksum still
            // fails, as the spec demands of any header carrying one.
            do {
                header = try parseBody(bytes, total: total)
            } catch where error.reason == .crcMismatch {
                throw error
            } catch {
                header = ProxyHeader(version: .v2, command: .local, transport: .unspecified, addresses: .unspecified)
            }
        }
        return .complete(header, consumed: total)
    }

    private mutating func examinePrefixByte(_ byte: UInt8) throws(ProxyHeaderError) {
        switch offset {
        case 0..<12:
            guard byte == Self.signature[offset] else { throw ProxyHeaderError(.badSignature(offset: offset)) }
        case 12:
            guard byte >> 4 == 2 else { throw ProxyHeaderError(.badVersion(byte)) }
            guard let command = ProxyHeader.Command(rawValue: byte & 0x0F) else {
                throw ProxyHeaderError(.badCommand(byte))
            }
            self.command = command
        case 13:
            familyByte = byte
            if command == .proxy && Self.addressBlockLength(byte) == nil {
                throw ProxyHeaderError(.unknownV2Family(byte))
            }
        case 14:
            // The high byte alone may already put the header over the limit.
            let atLeast = Self.prefixLength + Int(byte) << 8
            guard atLeast <= maximumHeaderLength else {
                throw ProxyHeaderError(.v2TooLong(length: atLeast, maximum: maximumHeaderLength))
            }
            length = Int(byte) << 8
        default:
            length |= Int(byte)
            guard Self.prefixLength + length <= maximumHeaderLength else {
                throw ProxyHeaderError(.v2TooLong(length: Self.prefixLength + length, maximum: maximumHeaderLength))
            }
            if command == .proxy, let needed = Self.addressBlockLength(familyByte), needed > length {
                throw ProxyHeaderError(
                    .addressBlockExceedsLength(family: familyByte, needed: needed, declared: length))
            }
        }
    }

    /// The address block size for a family/transport byte, nil if undefined.
    static func addressBlockLength(_ familyByte: UInt8) -> Int? {
        guard ProxyHeader.TransportProtocol(rawValue: familyByte & 0x0F) != nil,
              let family = ProxyHeader.AddressFamily(rawValue: familyByte >> 4)
        else { return nil }
        return addressBlockLength(family)
    }

    static func addressBlockLength(_ family: ProxyHeader.AddressFamily) -> Int {
        switch family {
        case .unspecified: 0
        case .inet: 2 * 4 + 2 * 2
        case .inet6: 2 * 16 + 2 * 2
        case .unix: 2 * unixPathLength
        }
    }

    private func parseBody(_ bytes: UnsafeRawBufferPointer, total: Int) throws(ProxyHeaderError) -> ProxyHeader {
        guard let family = ProxyHeader.AddressFamily(rawValue: familyByte >> 4),
              let transport = ProxyHeader.TransportProtocol(rawValue: familyByte & 0x0F)
        else { throw ProxyHeaderError(.unknownV2Family(familyByte)) }
        let blockLength = Self.addressBlockLength(family)
        guard blockLength <= length else {
            throw ProxyHeaderError(.addressBlockExceedsLength(family: familyByte, needed: blockLength, declared: length))
        }
        let addresses = Self.decodeAddresses(family, bytes, at: Self.prefixLength)
        let tlvs = try parseTLVs(bytes, Self.prefixLength + blockLength..<total)
        return ProxyHeader(version: .v2, command: command, transport: transport, addresses: addresses, tlvs: tlvs)
    }

    private static func decodeAddresses(
        _ family: ProxyHeader.AddressFamily, _ bytes: UnsafeRawBufferPointer, at start: Int
    ) -> ProxyHeader.Addresses {
        switch family {
        case .unspecified:
            return .unspecified
        case .inet:
            let source = IPv4Address(readBigEndianUInt32(bytes, at: start))
            let destination = IPv4Address(readBigEndianUInt32(bytes, at: start + 4))
            return .inet(
                source: .init(source, port: readBigEndianUInt16(bytes, at: start + 8)),
                destination: .init(destination, port: readBigEndianUInt16(bytes, at: start + 10)))
        case .inet6:
            return .inet6(
                source: .init(ipv6(bytes, at: start), port: readBigEndianUInt16(bytes, at: start + 32)),
                destination: .init(ipv6(bytes, at: start + 16), port: readBigEndianUInt16(bytes, at: start + 34)))
        case .unix:
            return .unix(
                source: unixPath(bytes, at: start), destination: unixPath(bytes, at: start + unixPathLength))
        }
    }

    private static func ipv6(_ bytes: UnsafeRawBufferPointer, at start: Int) -> IPv6Address {
        func half(_ at: Int) -> UInt64 {
            UInt64(readBigEndianUInt32(bytes, at: at)) << 32 | UInt64(readBigEndianUInt32(bytes, at: at + 4))
        }
        return IPv6Address(high: half(start), low: half(start + 8))
    }

    /// A `sun_path`: cut at the first NUL, or for an abstract name (leading
    /// NUL) stripped of trailing NUL padding. All zeros is the empty path.
    static func unixPath(_ bytes: UnsafeRawBufferPointer, at start: Int) -> [UInt8] {
        let field = bytes[start..<start + unixPathLength]
        if field.first != 0 {
            let end = field.firstIndex(of: 0) ?? field.endIndex
            return Array(field[start..<end])
        }
        guard let last = field.lastIndex(where: { $0 != 0 }) else { return [] }
        return Array(field[start...last])
    }

    /// Reads the TLVs, validating each, and checks the CRC32C if one is
    /// present. Allocates nothing when there are none, or when one is bad.
    private func parseTLVs(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) throws(ProxyHeaderError) -> [ProxyTLV] {
        guard !range.isEmpty else { return [] }
        // Validate everything in place first: a bad header costs no allocation, and a
        // good one allocates its TLV array once and one array per value.
        var count = 0
        var checksumOffset: Int?
        try forEachTLV(in: bytes, range) { (type, start, valueRange) throws(ProxyHeaderError) in
            do throws(ProxyHeaderError.TLVProblem) {
                try ProxyTLV.validate(type: type, value: UnsafeRawBufferPointer(rebasing: bytes[valueRange]))
            } catch {
                throw ProxyHeaderError(.badTLV(error, type: type, offset: start))
            }
            if type == ProxyTLV.TypeCode.crc32c {
                guard checksumOffset == nil else {
                    throw ProxyHeaderError(.badTLV(.duplicateChecksum, type: type, offset: start))
                }
                checksumOffset = valueRange.lowerBound
            }
            count += 1
        }
        if let checksumOffset {
            var checksum = prefixChecksum
            checksum.update(UnsafeRawBufferPointer(rebasing: bytes[Self.prefixLength..<checksumOffset]))
            checksum.updateZeros(count: 4)
            checksum.update(UnsafeRawBufferPointer(rebasing: bytes[(checksumOffset + 4)..<range.upperBound]))
            let received = readBigEndianUInt32(bytes, at: checksumOffset)
            guard checksum.value == received else {
                throw ProxyHeaderError(.crcMismatch(received: received, computed: checksum.value))
            }
        }
        var tlvs: [ProxyTLV] = []
        tlvs.reserveCapacity(count)
        try forEachTLV(in: bytes, range) { (type, _, valueRange) throws(ProxyHeaderError) in
            tlvs.append(ProxyTLV(type: type, value: Array(bytes[valueRange])))
        }
        return tlvs
    }
}

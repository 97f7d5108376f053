/// Writes a `ProxyHeader` in the format its `version` names: the v1 text line
/// or the v2 binary header, optionally with a PP2_TYPE_CRC32C checksum.
///
/// The encoder refuses what the format cannot say (v1 LOCAL, UNIX, UDP or
/// TLVs; a TLV whose value breaks its type's rules; more than 65535 bytes)
/// rather than saying something else.
public enum ProxyHeaderEncoder {
    /// Encodes `header`.
    ///
    /// - Parameter addingChecksum: v2 only; appends a CRC32C TLV when the
    ///   header has none. A CRC32C TLV already in `tlvs` always gets the
    ///   correct value, whatever it held.
    public static func encode(_ header: ProxyHeader, addingChecksum: Bool = false) throws(ProxyHeaderError) -> [UInt8] {
        switch header.version {
        case .v1:
            guard !addingChecksum else { throw unencodable("v1 has no checksum") }
            return try encodeV1(header)
        case .v2:
            return try encodeV2(header, addingChecksum: addingChecksum)
        }
    }

    private static func unencodable(_ why: String) -> ProxyHeaderError {
        ProxyHeaderError(.unencodable(why))
    }

    private static func encodeV1(_ header: ProxyHeader) throws(ProxyHeaderError) -> [UInt8] {
        guard header.command == .proxy else { throw unencodable("v1 has no LOCAL command (send UNKNOWN)") }
        guard header.tlvs.isEmpty else { throw unencodable("v1 carries no TLVs") }
        var line = Array("PROXY ".utf8)
        line.reserveCapacity(ProxyHeaderParser.v1MaximumLength)
        func appendTCP(_ keyword: String) throws(ProxyHeaderError) {
            guard header.transport == .stream else { throw unencodable("v1 only carries TCP") }
            line += keyword.utf8
        }
        switch header.addresses {
        case .unspecified:
            line += "UNKNOWN".utf8
        case .inet(let source, let destination):
            try appendTCP("TCP4 ")
            source.address.appendText(to: &line)
            line.append(UInt8(ascii: " "))
            destination.address.appendText(to: &line)
            appendPorts(source.port, destination.port, to: &line)
        case .inet6(let source, let destination):
            try appendTCP("TCP6 ")
            source.address.appendText(to: &line)
            line.append(UInt8(ascii: " "))
            destination.address.appendText(to: &line)
            appendPorts(source.port, destination.port, to: &line)
        case .unix:
            throw unencodable("v1 cannot carry UNIX addresses (send UNKNOWN)")
        }
        line += "\r\n".utf8
        return line
    }

    private static func appendPorts(_ source: UInt16, _ destination: UInt16, to line: inout [UInt8]) {
        line.append(UInt8(ascii: " "))
        appendDecimal(UInt32(source), to: &line)
        line.append(UInt8(ascii: " "))
        appendDecimal(UInt32(destination), to: &line)
    }

    private static func encodeV2(_ header: ProxyHeader, addingChecksum: Bool) throws(ProxyHeaderError) -> [UInt8] {
        var bytes = V2Parser.signature
        bytes.append(0x20 | header.command.rawValue)
        bytes.append(header.family.rawValue << 4 | header.transport.rawValue)
        bytes += [0, 0]  // length, filled in below

        switch header.addresses {
        case .unspecified:
            break
        case .inet(let source, let destination):
            bytes += source.address.bytes
            bytes += destination.address.bytes
            appendUInt16(source.port, to: &bytes)
            appendUInt16(destination.port, to: &bytes)
        case .inet6(let source, let destination):
            bytes += source.address.bytes
            bytes += destination.address.bytes
            appendUInt16(source.port, to: &bytes)
            appendUInt16(destination.port, to: &bytes)
        case .unix(let source, let destination):
            for path in [source, destination] {
                guard path.count <= V2Parser.unixPathLength else {
                    throw unencodable("UNIX path of \(path.count) bytes, at most 108 fit")
                }
                bytes += path
                bytes += repeatElement(0, count: V2Parser.unixPathLength - path.count)
            }
        }

        var tlvs = header.tlvs
        var checksumCount = tlvs.count { $0.type == ProxyTLV.TypeCode.crc32c }
        if addingChecksum && checksumCount == 0 {
            tlvs.append(ProxyTLV(.crc32c(0)))
            checksumCount = 1
        }
        guard checksumCount <= 1 else { throw unencodable("more than one CRC32C TLV") }
        var checksumOffset: Int?
        for tlv in tlvs {
            do throws(ProxyHeaderError.TLVProblem) {
                _ = try tlv.decode()
            } catch {
                throw unencodable("TLV 0x\(hex(tlv.type)) (\(ProxyTLV.typeName(tlv.type))): \(error.text)")
            }
            guard tlv.value.count <= 0xFFFF else { throw unencodable("TLV value over 65535 bytes") }
            bytes.append(tlv.type)
            appendUInt16(UInt16(tlv.value.count), to: &bytes)
            if tlv.type == ProxyTLV.TypeCode.crc32c {
                checksumOffset = bytes.count
                bytes += [0, 0, 0, 0]
            } else {
                bytes += tlv.value
            }
        }

        let length = bytes.count - V2Parser.prefixLength
        guard length <= 0xFFFF else { throw unencodable("header body of \(length) bytes, at most 65535 fit") }
        bytes[14] = UInt8(truncatingIfNeeded: length >> 8)
        bytes[15] = UInt8(truncatingIfNeeded: length)
        if let checksumOffset {
            let checksum = CRC32C.checksum(bytes)
            bytes.replaceSubrange(checksumOffset..<checksumOffset + 4, with: bigEndianBytes(checksum))
        }
        return bytes
    }

    private static func appendUInt16(_ value: UInt16, to bytes: inout [UInt8]) {
        bytes.append(UInt8(truncatingIfNeeded: value >> 8))
        bytes.append(UInt8(truncatingIfNeeded: value))
    }
}

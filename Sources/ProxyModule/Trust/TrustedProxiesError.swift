/// A `proxy_trusted_proxies` entry that is not an IP address or network.
///
/// The description names the entry and says what is wrong with it, ready for a
/// log line or a `nethost check` report:
///
///     trusted proxy entry "10.0.0.0/33": prefix length 33 is out of range, an IPv4 network takes 0 to 32
public struct TrustedProxiesError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The entry as it was written in the configuration.
    public let entry: String

    let reason: Reason

    enum Reason: Hashable, Sendable {
        case empty
        case hostName
        case brackets
        case zoneIdentifier
        case badAddress
        case missingPrefixLength
        case prefixLengthNotANumber(String)
        case prefixLengthOutOfRange(String, family: Family)
    }

    enum Family: Hashable, Sendable {
        case ipv4
        case ipv6
    }

    init(entry: String, reason: Reason) {
        self.entry = entry
        self.reason = reason
    }

    public var description: String {
        "trusted proxy entry \"\(self.entry)\": \(self.explanation)"
    }

    private var explanation: String {
        switch self.reason {
        case .empty:
            return "empty entry, expected an IP address such as 127.0.0.1 or a network such as 10.0.0.0/8"
        case .hostName:
            return "host names are not resolved; write IP addresses or networks (for this host: 127.0.0.1 and ::1)"
        case .brackets:
            return "write IPv6 addresses without brackets, e.g. ::1 or 2001:db8::/32"
        case .zoneIdentifier:
            return "zone identifiers (%...) are not supported in IPv6 addresses"
        case .badAddress:
            return "not an IPv4 or IPv6 address"
        case .missingPrefixLength:
            return "missing prefix length after \"/\""
        case .prefixLengthNotANumber(let text):
            return "prefix length \"\(text)\" is not a number"
        case .prefixLengthOutOfRange(let length, .ipv4):
            return "prefix length \(length) is out of range, an IPv4 network takes 0 to 32"
        case .prefixLengthOutOfRange(let length, .ipv6):
            return "prefix length \(length) is out of range, an IPv6 network takes 0 to 128"
        }
    }
}

import NIOCore
import ProxyModule
import Testing

/// Parses an address the way a peer would arrive (a NIO `SocketAddress`).
private func peer(_ ip: String) throws -> SocketAddress {
    try SocketAddress(ipAddress: ip, port: 4242)
}

/// The 4 or 16 bytes of an address, as a PROXY v2 header carries them.
private func bytes(_ ip: String) throws -> [UInt8] {
    switch try peer(ip) {
    case .v4(let v4):
        return withUnsafeBytes(of: v4.address.sin_addr) { Array($0) }
    case .v6(let v6):
        return withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) }
    case .unixDomainSocket:
        return []
    }
}

struct MatchCase: Sendable, CustomTestStringConvertible {
    var entries: [String]
    var peer: String
    var trusted: Bool
    var testDescription: String { "\(entries) \(trusted ? "trusts" : "rejects") \(peer)" }
}

@Suite("TrustedProxies")
struct TrustedProxiesTests {
    static let matchCases: [MatchCase] = [
        // Single IPv4 hosts.
        .init(entries: ["127.0.0.1"], peer: "127.0.0.1", trusted: true),
        .init(entries: ["127.0.0.1"], peer: "127.0.0.2", trusted: false),
        .init(entries: ["192.0.2.7"], peer: "192.0.2.7", trusted: true),
        .init(entries: ["192.0.2.7"], peer: "192.0.2.6", trusted: false),
        // Single IPv6 hosts.
        .init(entries: ["::1"], peer: "::1", trusted: true),
        .init(entries: ["::1"], peer: "::2", trusted: false),
        .init(entries: ["2001:db8::42"], peer: "2001:db8::42", trusted: true),
        .init(entries: ["2001:db8::42"], peer: "2001:db8::43", trusted: false),
        .init(entries: ["2001:DB8:0:0:0:0:0:42"], peer: "2001:db8::42", trusted: true),
        // IPv4 networks of many lengths.
        .init(entries: ["0.0.0.0/0"], peer: "203.0.113.9", trusted: true),
        .init(entries: ["0.0.0.0/0"], peer: "2001:db8::1", trusted: false),
        .init(entries: ["10.0.0.0/8"], peer: "10.255.255.255", trusted: true),
        .init(entries: ["10.0.0.0/8"], peer: "10.0.0.0", trusted: true),
        .init(entries: ["10.0.0.0/8"], peer: "11.0.0.0", trusted: false),
        .init(entries: ["10.0.0.0/8"], peer: "9.255.255.255", trusted: false),
        .init(entries: ["172.16.0.0/12"], peer: "172.31.255.1", trusted: true),
        .init(entries: ["172.16.0.0/12"], peer: "172.32.0.1", trusted: false),
        .init(entries: ["192.168.1.0/24"], peer: "192.168.1.200", trusted: true),
        .init(entries: ["192.168.1.0/24"], peer: "192.168.2.1", trusted: false),
        .init(entries: ["198.51.100.4/31"], peer: "198.51.100.4", trusted: true),
        .init(entries: ["198.51.100.4/31"], peer: "198.51.100.5", trusted: true),
        .init(entries: ["198.51.100.4/31"], peer: "198.51.100.6", trusted: false),
        .init(entries: ["198.51.100.4/31"], peer: "198.51.100.3", trusted: false),
        .init(entries: ["198.51.100.4/32"], peer: "198.51.100.4", trusted: true),
        .init(entries: ["198.51.100.4/32"], peer: "198.51.100.5", trusted: false),
        // IPv6 networks of many lengths.
        .init(entries: ["::/0"], peer: "2001:db8::1", trusted: true),
        .init(entries: ["::/0"], peer: "203.0.113.9", trusted: true),
        .init(entries: ["2001:db8::/32"], peer: "2001:db8:ffff::1", trusted: true),
        .init(entries: ["2001:db8::/32"], peer: "2001:db9::1", trusted: false),
        .init(entries: ["2001:db8:1:2::/64"], peer: "2001:db8:1:2:ffff:ffff:ffff:ffff", trusted: true),
        .init(entries: ["2001:db8:1:2::/64"], peer: "2001:db8:1:3::", trusted: false),
        .init(entries: ["2001:db8::/127"], peer: "2001:db8::1", trusted: true),
        .init(entries: ["2001:db8::/127"], peer: "2001:db8::2", trusted: false),
        .init(entries: ["2001:db8::5/128"], peer: "2001:db8::5", trusted: true),
        .init(entries: ["2001:db8::5/128"], peer: "2001:db8::4", trusted: false),
        .init(entries: ["fe80::/10"], peer: "febf::1", trusted: true),
        .init(entries: ["fe80::/10"], peer: "fec0::1", trusted: false),
        // IPv4-mapped IPv6 peers against IPv4 entries.
        .init(entries: ["10.0.0.0/8"], peer: "::ffff:10.1.2.3", trusted: true),
        .init(entries: ["10.0.0.0/8"], peer: "::ffff:11.1.2.3", trusted: false),
        .init(entries: ["127.0.0.1"], peer: "::ffff:127.0.0.1", trusted: true),
        // IPv4 peers against IPv6 (mapped) entries.
        .init(entries: ["::ffff:0:0/96"], peer: "203.0.113.9", trusted: true),
        .init(entries: ["::ffff:0:0/96"], peer: "2001:db8::1", trusted: false),
        .init(entries: ["::ffff:10.0.0.0/104"], peer: "10.9.8.7", trusted: true),
        .init(entries: ["::ffff:10.0.0.0/104"], peer: "11.9.8.7", trusted: false),
        .init(entries: ["::ffff:10.0.0.0/104"], peer: "::ffff:10.9.8.7", trusted: true),
        .init(entries: ["::ffff:192.0.2.1"], peer: "192.0.2.1", trusted: true),
        // IPv4-compatible and NAT64 forms are not IPv4-mapped.
        .init(entries: ["10.0.0.0/8"], peer: "::10.1.2.3", trusted: false),
        .init(entries: ["10.0.0.0/8"], peer: "64:ff9b::10.1.2.3", trusted: false),
        // Host bits set: normalised, not rejected.
        .init(entries: ["192.168.1.1/24"], peer: "192.168.1.77", trusted: true),
        .init(entries: ["192.168.1.1/24"], peer: "192.168.0.1", trusted: false),
        .init(entries: ["2001:db8::1/32"], peer: "2001:db8:aaaa::", trusted: true),
        // Several entries, both families.
        .init(entries: ["10.0.0.0/8", "2001:db8::/32"], peer: "2001:db8::9", trusted: true),
        .init(entries: ["10.0.0.0/8", "2001:db8::/32"], peer: "10.0.0.9", trusted: true),
        .init(entries: ["10.0.0.0/8", "2001:db8::/32"], peer: "192.0.2.1", trusted: false),
        // Whitespace around an entry is ignored.
        .init(entries: ["  10.0.0.0/8\t"], peer: "10.0.0.1", trusted: true),
    ]

    @Test(arguments: matchCases)
    func socketAddressLookup(_ match: MatchCase) throws {
        let trusted = try TrustedProxies(match.entries)
        #expect(trusted.contains(try peer(match.peer)) == match.trusted)
    }

    @Test(arguments: matchCases)
    func rawBytesLookup(_ match: MatchCase) throws {
        let trusted = try TrustedProxies(match.entries)
        let raw = try bytes(match.peer)
        #expect(trusted.contains(addressBytes: raw) == match.trusted)
        #expect(trusted.contains(addressBytes: raw[...]) == match.trusted)
    }

    @Test
    func emptyListTrustsEveryone() throws {
        let trusted = try TrustedProxies([String]())
        #expect(trusted.trustsEveryone)
        #expect(trusted == .everyone)
        #expect(trusted.contains(try peer("203.0.113.9")))
        #expect(trusted.contains(try peer("2001:db8::1")))
        #expect(trusted.contains(try SocketAddress(unixDomainSocketPath: "/tmp/nethost.sock")))
        #expect(trusted.contains(addressBytes: [1, 2, 3]))
        #expect(trusted.description == "everyone")
    }

    @Test
    func defaultTrustsLoopbackOnly() throws {
        let trusted = TrustedProxies.default
        #expect(!trusted.trustsEveryone)
        #expect(trusted == (try TrustedProxies(["127.0.0.1", "::1"])))
        #expect(trusted.description == "127.0.0.1/32, ::1/128")
        #expect(trusted.contains(try peer("127.0.0.1")))
        #expect(trusted.contains(try peer("::1")))
        #expect(trusted.contains(try peer("::ffff:127.0.0.1")))
        #expect(!trusted.contains(try peer("127.0.0.5")))
        #expect(!trusted.contains(try peer("10.0.0.1")))
        #expect(!trusted.contains(try peer("::2")))
        #expect(!trusted.contains(try SocketAddress(unixDomainSocketPath: "/tmp/nethost.sock")))
    }

    @Test
    func unixDomainPeersAreNotMatchedByAnyEntry() throws {
        let trusted = try TrustedProxies(["::/0", "0.0.0.0/0"])
        #expect(!trusted.trustsEveryone)
        #expect(!trusted.contains(try SocketAddress(unixDomainSocketPath: "/tmp/nethost.sock")))
    }

    @Test
    func rawBytesOfOtherLengthsAreNotAddresses() throws {
        let trusted = try TrustedProxies(["0.0.0.0/0", "::/0"])
        #expect(!trusted.contains(addressBytes: [UInt8]()))
        #expect(!trusted.contains(addressBytes: [127, 0, 0]))
        #expect(!trusted.contains(addressBytes: [UInt8](repeating: 0, count: 5)))
        #expect(!trusted.contains(addressBytes: [UInt8](repeating: 0, count: 17)))
    }

    @Test(arguments: [
        (["10.0.0.0/8", "127.0.0.1"], ["127.0.0.1", "10.0.0.0/8"]),
        (["10.0.0.0/8"], ["::ffff:10.0.0.0/104"]),
        (["10.1.2.3/8"], ["10.0.0.0/8", "10.0.0.0/8"]),
        (["127.0.0.1"], ["127.0.0.1/32"]),
        (["::1"], ["0:0:0:0:0:0:0:1/128"]),
    ])
    func equalSetsCompareEqual(_ lhs: [String], _ rhs: [String]) throws {
        let a = try TrustedProxies(lhs)
        let b = try TrustedProxies(rhs)
        #expect(a == b)
        #expect(a.hashValue == b.hashValue)
    }

    @Test(arguments: [
        ("192.168.1.1/24", "192.168.1.0/24"),
        ("10.0.0.0/8", "10.0.0.0/8"),
        ("0.0.0.0/0", "0.0.0.0/0"),
        ("203.0.113.9", "203.0.113.9/32"),
        ("::ffff:10.0.0.0/104", "10.0.0.0/8"),
        ("::ffff:0:0/96", "0.0.0.0/0"),
        ("2001:db8::1/32", "2001:db8::/32"),
        ("2001:db8:1:2:3:4:5:6/64", "2001:db8:1:2::/64"),
        ("::/0", "::/0"),
        ("::1", "::1/128"),
    ])
    func normalisedDescription(_ entry: String, _ expected: String) throws {
        #expect(try TrustedProxies.Network(parsing: entry).description == expected)
    }

    @Test(arguments: [
        ("", "trusted proxy entry \"\": empty entry, expected an IP address such as 127.0.0.1 or a network such as 10.0.0.0/8"),
        ("   ", "trusted proxy entry \"   \": empty entry, expected an IP address such as 127.0.0.1 or a network such as 10.0.0.0/8"),
        ("localhost", "trusted proxy entry \"localhost\": host names are not resolved; write IP addresses or networks (for this host: 127.0.0.1 and ::1)"),
        ("proxy.example.net/24", "trusted proxy entry \"proxy.example.net/24\": host names are not resolved; write IP addresses or networks (for this host: 127.0.0.1 and ::1)"),
        ("256.0.0.1", "trusted proxy entry \"256.0.0.1\": not an IPv4 or IPv6 address"),
        ("10.0.0", "trusted proxy entry \"10.0.0\": not an IPv4 or IPv6 address"),
        ("010.0.0.1", "trusted proxy entry \"010.0.0.1\": not an IPv4 or IPv6 address"),
        ("1.2.3.4.5", "trusted proxy entry \"1.2.3.4.5\": not an IPv4 or IPv6 address"),
        ("2001:db8:::1", "trusted proxy entry \"2001:db8:::1\": not an IPv4 or IPv6 address"),
        ("2001:db8::g", "trusted proxy entry \"2001:db8::g\": not an IPv4 or IPv6 address"),
        ("1:2:3:4:5:6:7:8:9", "trusted proxy entry \"1:2:3:4:5:6:7:8:9\": not an IPv4 or IPv6 address"),
        ("/8", "trusted proxy entry \"/8\": not an IPv4 or IPv6 address"),
        ("10.0.0.0 /8", "trusted proxy entry \"10.0.0.0 /8\": not an IPv4 or IPv6 address"),
        ("[::1]", "trusted proxy entry \"[::1]\": write IPv6 addresses without brackets, e.g. ::1 or 2001:db8::/32"),
        ("fe80::1%eth0", "trusted proxy entry \"fe80::1%eth0\": zone identifiers (%...) are not supported in IPv6 addresses"),
        ("10.0.0.0/", "trusted proxy entry \"10.0.0.0/\": missing prefix length after \"/\""),
        ("10.0.0.0/abc", "trusted proxy entry \"10.0.0.0/abc\": prefix length \"abc\" is not a number"),
        ("10.0.0.0/-1", "trusted proxy entry \"10.0.0.0/-1\": prefix length \"-1\" is not a number"),
        ("10.0.0.0/+8", "trusted proxy entry \"10.0.0.0/+8\": prefix length \"+8\" is not a number"),
        ("10.0.0.0/8/8", "trusted proxy entry \"10.0.0.0/8/8\": prefix length \"8/8\" is not a number"),
        ("10.0.0.0/33", "trusted proxy entry \"10.0.0.0/33\": prefix length 33 is out of range, an IPv4 network takes 0 to 32"),
        ("10.0.0.0/99999999999999999999999", "trusted proxy entry \"10.0.0.0/99999999999999999999999\": prefix length 99999999999999999999999 is out of range, an IPv4 network takes 0 to 32"),
        ("::/129", "trusted proxy entry \"::/129\": prefix length 129 is out of range, an IPv6 network takes 0 to 128"),
        ("::ffff:10.0.0.0/200", "trusted proxy entry \"::ffff:10.0.0.0/200\": prefix length 200 is out of range, an IPv6 network takes 0 to 128"),
    ])
    func malformedEntry(_ entry: String, _ message: String) {
        #expect {
            _ = try TrustedProxies.Network(parsing: entry)
        } throws: { error in
            guard let error = error as? TrustedProxiesError else { return false }
            return error.entry == entry && error.description == message
        }
    }

    @Test
    func firstBadEntryIsReported() {
        #expect(throws: TrustedProxiesError.self) {
            _ = try TrustedProxies(["127.0.0.1", "10.0.0.0/8", "localhost", "bad/99"])
        }
        do {
            _ = try TrustedProxies(["127.0.0.1", "localhost", "bad/99"])
            Issue.record("expected an error")
        } catch {
            #expect(error.entry == "localhost")
        }
    }
}

import Foundation
import NetHost
import NetHostTestSupport
import ProxyProtocol
import Testing

/// Application bytes that look like headers and line ends, so that reading
/// one of them as header, or dropping or repeating one, shows.
private let tricky: [UInt8] = Array("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n".utf8)
    + [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, 0x21, 0x11, 0x00, 0x0C]
    + Array(0 ... 40) + Array("\nend\n".utf8)

/// A header to send, named for the test report.
struct NamedHeader: Sendable, CustomTestStringConvertible {
    var testDescription: String
    var bytes: [UInt8]

    static let v1 = NamedHeader(testDescription: "v1 TCP4", bytes: Array(Headers.v1TCP4.utf8))
    static let v2WithTLVs = NamedHeader(
        testDescription: "v2 INET with AUTHORITY and CRC32C",
        bytes: (try? Headers.v2(Headers.inet, tlvs: [ProxyTLV(.authority("example.com"))], checksum: true)) ?? [])
}

private let countQuery: [UInt8] = Array("\0count\n".utf8)

/// The number in the service's `calls=N` answer. After many one-byte reads the
/// server's read buffer shrinks to 64 bytes, so a later segment may come in two chunks.
private func calls(_ line: String) -> Int? {
    line.hasPrefix("calls=") ? Int(line.dropFirst("calls=".count)) : nil
}

extension NetProxyEndToEnd {
    /// The service gets exactly the bytes that followed the header: none of the
    /// header, none lost, none invented, however the header was cut into segments.
    @Suite("Delivery of the bytes after the header")
    struct Delivery {
        @Test("header and data in one segment: onincoming gets exactly the data, once", arguments: [
            NamedHeader.v1, NamedHeader.v2WithTLVs])
        func oneSegment(named: NamedHeader) async throws {
            let header = named.bytes
            // As much of the tricky bytes as fits one read of the server's first, 128-byte buffer.
            let data = Array(tricky.prefix(128 - header.count))
            #expect(data.count >= 32, "at least a whole fake v1 header after the real one")
            try await withProxyHost { host in
                let client = try host.connect()
                try client.send(header + data)
                #expect(try client.report()["ip"] == "203.0.113.7")
                #expect(try client.read(count: data.count) == data)
                try client.send(countQuery)
                #expect(try client.readLine() == "calls=1")
            }
        }

        @Test("a large first segment: the data that did not fit the first read follows, complete and in order")
        func largeFirstSegment() async throws {
            let data = TestBytes.pseudoRandom(count: 200_000)
            try await withProxyHost { host in
                let client = try host.connect()
                try client.send(Array(Headers.v1TCP4.utf8) + data)
                #expect(try client.report()["ip"] == "203.0.113.7")
                #expect(try client.read(count: data.count) == data)
                try client.send(countQuery)
                #expect((calls(try client.readLine()) ?? 0) >= 1)
            }
        }

        @Test("a header sent a byte per segment, then data: the header is assembled, the data delivered whole", arguments: [
            NamedHeader.v1, NamedHeader.v2WithTLVs])
        func byteBySegment(named: NamedHeader) async throws {
            let header = named.bytes
            try await withProxyHost { host in
                let client = try DripSocket(port: host.port)
                #expect(client.drip(header))
                let report = ReportService.fields(try client.readLine())
                #expect(report["ip"] == "203.0.113.7")
                #expect(report["port"] == "51234")
                #expect(client.send(tricky))
                #expect(try client.read(count: tricky.count) == tricky)
                #expect(client.send(countQuery))
                #expect((1 ... 2).contains(calls(try client.readLine()) ?? -1))
            }
        }

        @Test("the last header byte and the data in one segment, after a header that came in pieces")
        func lastByteWithData() async throws {
            let header = Array(Headers.v1TCP4.utf8)
            try await withProxyHost { host in
                let client = try DripSocket(port: host.port)
                #expect(client.drip(Array(header.dropLast())))
                #expect(client.send([header.last!] + tricky))
                #expect(try client.readLine().contains("ip=203.0.113.7 "))
                #expect(try client.read(count: tricky.count) == tricky)
                #expect(client.send(countQuery))
                #expect((1 ... 2).contains(calls(try client.readLine()) ?? -1))
            }
        }

        @Test("header, then data in a later segment: onconnect first, then onincoming with the data")
        func separateSegments() async throws {
            try await withProxyHost { host in
                let client = try host.connect()
                try client.send(try Headers.v2TCP4())
                // The report arrives before any data is sent: onconnect did not wait for data.
                #expect(try client.report()["ip"] == "203.0.113.7")
                try client.send(tricky)
                #expect(try client.read(count: tricky.count) == tricky)
                try client.send(countQuery)
                #expect(try client.readLine() == "calls=1")
            }
        }

        @Test("a header and no data: onincoming is never called")
        func noData() async throws {
            try await withProxyHost { host in
                let client = try host.connect()
                try client.send(Headers.v1TCP4)
                #expect(try client.report()["ip"] == "203.0.113.7")
                // A call with nothing would have come before the report's line was even
                // written (the hand-over runs onconnect, then passes what followed the
                // header, in one go): the answer to the query, after it, would count it.
                try client.send(countQuery)
                #expect(try client.readLine() == "calls=0")
            }
        }
    }
}

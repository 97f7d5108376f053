import Benchmark
import ProxyProtocol

// One header per case, as a proxy would send it. Every iteration parses it with a
// fresh parser and checks the result, the way ProxyHeaderHandler does per connection.

private let source = ProxyHeader.Endpoint(IPv4Address(203, 0, 113, 7), port: 51234)
private let destination = ProxyHeader.Endpoint(IPv4Address(192, 0, 2, 1), port: 443)

private let v1TCP4 = Array("PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n".utf8)

private let v2TCP4 = try! ProxyHeaderEncoder.encode(
    ProxyHeader(addresses: .inet(source: source, destination: destination))
)

/// authority, unique id, ssl (with version, CN, cipher, sig and key algorithms) and a CRC32C over it all.
private let v2TCP4TLVs = try! ProxyHeaderEncoder.encode(
    ProxyHeader(
        addresses: .inet(source: source, destination: destination),
        tlvs: [
            ProxyTLV(.authority("chat.example.com")),
            ProxyTLV(.uniqueID(Array(0..<32))),
            ProxyTLV(.ssl(ProxySSLInfo(
                client: [.ssl, .certificateOnConnection], verify: 0,
                version: "TLSv1.3", commonName: "alice.example.com", cipher: "TLS_AES_128_GCM_SHA256",
                signatureAlgorithm: "RSA-SHA256", keyAlgorithm: "RSA2048"
            ))),
        ]
    ),
    addingChecksum: true
)

@inline(never)
private func parseOnce(_ buffer: UnsafeRawBufferPointer, expecting length: Int) -> ProxyHeader {
    var parser = ProxyHeaderParser()
    guard case .complete(let header, let consumed)? = try? parser.parse(buffer: buffer), consumed == length else {
        fatalError("the benchmark header did not parse")
    }
    return header
}

private let cases: [(String, [UInt8])] = [
    ("v1 TCP4", v1TCP4),
    ("v2 TCP4 no TLVs", v2TCP4),
    ("v2 TCP4 + TLVs (authority, unique id, ssl, crc32c)", v2TCP4TLVs),
]

let benchmarks: @Sendable () -> Void = {
    // 1,000 parses per measured iteration: the figures are per header (time and mallocs).
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .cpuTotal, .mallocCountTotal, .throughput],
        timeUnits: .nanoseconds,
        warmupIterations: 10,
        scalingFactor: .kilo,
        maxDuration: .seconds(2),
        maxIterations: 100_000
    )
    for (name, bytes) in cases {
        Benchmark("parse \(name) [\(bytes.count) B]") { benchmark in
            bytes.withUnsafeBytes { buffer in
                for _ in benchmark.scaledIterations {
                    blackHole(parseOnce(buffer, expecting: bytes.count))
                }
            }
        }
    }
    // The same, one header per iteration, so that malloc counts are plainly per header.
    for (name, bytes) in cases {
        Benchmark(
            "parse \(name), 1 per iteration",
            configuration: .init(metrics: [.mallocCountTotal, .wallClock], scalingFactor: .one, maxDuration: .seconds(1))
        ) { benchmark in
            bytes.withUnsafeBytes { buffer in
                for _ in benchmark.scaledIterations {
                    blackHole(parseOnce(buffer, expecting: bytes.count))
                }
            }
        }
    }
}

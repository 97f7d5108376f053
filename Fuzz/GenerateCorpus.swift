// Writes the fuzzer's seed corpus: every header of the parser tests
// (Tests/ProxyProtocolTests/Samples.swift), valid and invalid, plus the
// encoder's canonical and checksummed forms and a few boundary headers.
// Run by `Fuzz/build.sh corpus`; the output is committed as Fuzz/corpus/.

#if canImport(Glibc)
import Glibc
#endif
import ProxyProtocol

@main
enum GenerateCorpus {
    static func main() throws {
        let arguments = CommandLine.arguments
        guard arguments.count == 2 else {
            print("usage: \(arguments[0]) DIRECTORY")
            exit(2)
        }
        let directory = arguments[1]
        guard mkdir(directory, 0o755) == 0 else {
            print("cannot create \(directory)")
            exit(1)
        }

        var files: [(name: String, bytes: [UInt8])] = []
        for (index, sample) in v1ValidSamples.enumerated() {
            files.append(("v1-valid-\(twoDigits(index))-\(slug(sample.name))", sample.bytes))
        }
        for (index, sample) in v1InvalidSamples.enumerated() {
            files.append(("v1-invalid-\(twoDigits(index))-\(slug(sample.name))", sample.bytes))
        }
        for (index, sample) in v2ValidSamples.enumerated() {
            files.append(("v2-valid-\(twoDigits(index))-\(slug(sample.name))", sample.bytes))
            if sample.expected.command == .proxy {
                let checked = try ProxyHeaderEncoder.encode(sample.expected, addingChecksum: true)
                files.append(("v2-crc-\(twoDigits(index))-\(slug(sample.name))", checked))
            }
        }
        for (index, sample) in v2InvalidSamples.enumerated() {
            files.append(("v2-invalid-\(twoDigits(index))-\(slug(sample.name))", sample.bytes))
        }

        // Boundaries: the largest v2 header the default limit takes, a header
        // followed by application data, and an SSL TLV with every sub-TLV.
        let big = ProxyHeader(
            addresses: tcp4Addresses,
            tlvs: [ProxyTLV(type: 0xE0, value: [UInt8](repeating: 0x41, count: 4096 - 16 - 12 - 3))])
        files.append(("v2-boundary-4096-bytes", try ProxyHeaderEncoder.encode(big)))
        files.append(("v1-with-application-data", ascii("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nGET / HTTP/1.1\r\n\r\n")))
        files.append(("v2-with-application-data", v2Header(0x21, 0x11, tcp4Block) + ascii("GET / HTTP/1.1\r\n\r\n")))
        let ssl = ProxySSLInfo(
            client: [.ssl, .certificateOnConnection], verify: 0, version: "TLSv1.3", commonName: "client",
            cipher: "TLS_AES_128_GCM_SHA256", signatureAlgorithm: "SHA256", keyAlgorithm: "RSA2048")
        let sslHeader = ProxyHeader(
            addresses: tcp6Addresses,
            tlvs: [ProxyTLV(.ssl(ssl)), ProxyTLV(.alpn(ascii("h2"))), ProxyTLV(.netns("ns")), ProxyTLV(.uniqueID([1, 2]))])
        files.append(("v2-ssl-every-subtlv-crc", try ProxyHeaderEncoder.encode(sslHeader, addingChecksum: true)))

        var total = 0
        for file in files {
            let path = "\(directory)/\(file.name)"
            guard let handle = fopen(path, "wb") else {
                print("cannot write \(path)")
                exit(1)
            }
            _ = file.bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, handle) }
            fclose(handle)
            total += file.bytes.count
        }
        print("wrote \(files.count) files, \(total) bytes, to \(directory)")
    }

    static func twoDigits(_ number: Int) -> String { number < 10 ? "0\(number)" : "\(number)" }

    static func slug(_ name: String) -> String {
        var text = ""
        for character in name.lowercased() {
            if character.isLetter && character.isASCII || character.isNumber && character.isASCII {
                text.append(character)
            } else if !text.hasSuffix("-") {
                text.append("-")
            }
        }
        while text.hasSuffix("-") { text.removeLast() }
        return String(text.prefix(60))
    }
}

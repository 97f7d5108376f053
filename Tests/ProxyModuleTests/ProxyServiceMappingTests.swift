import Foundation
import NetHost
import NetHostTestSupport
import Testing

extension NetProxyEndToEnd {
    /// Ports without a mapping, and mappings to services nobody provides, are
    /// reported at start; their connections are closed after the header with
    /// a log line; the other ports carry on.
    @Suite("Unmapped ports and unknown services")
    struct ServiceMapping {
        @Test("proxy_ports lists a port without a mapping: a warning at start, its connections closed after the header")
        func unmappedPort() async throws {
            try await withProxyHost(extraPorts: 1, options: { ports in
                ["proxy_ports": .list(.integer(ports[0]), .integer(ports[1]))]
            }) { host in
                let unmapped = host.ports[1]
                #expect(host.logLine(
                    "proxy_ports lists port \(unmapped), which proxy_port_mappings does not map: its connections will be closed after the header"
                )?.hasPrefix("warning ") == true)

                let client = try host.connect(port: unmapped)
                try client.send(Headers.v1TCP4)
                #expect(try client.readToEnd().isEmpty)
                let line = host.logLine("port \(unmapped) has no entry in proxy_port_mappings; closing after the header",
                                        "peer=127.0.0.1:\(client.localPort)")
                #expect(line?.hasPrefix("warning ") == true)

                #expect(try host.servesAGoodConnection(port: host.ports[0]))
            }
        }

        @Test("a mapping to a service no module provides: a start-up problem, its connections closed with an error log")
        func unknownService() async throws {
            try await withProxyHost(services: [ReportService.name, "nosuch"]) { host in
                let missing = host.ports[1]
                let problem = "proxy_port_mappings maps port \(missing) to service 'nosuch', which no loaded module provides"
                #expect(host.logLine(problem)?.hasPrefix("warning ") == true)
                #expect(host.fixture.server?.problems.all.contains("net_proxy: " + problem) == true)

                let client = try host.connect(port: missing)
                try client.send(Headers.v1TCP4)
                #expect(try client.readToEnd().isEmpty)
                let line = host.logLine(
                    "proxy_port_mappings sends port \(missing) to service 'nosuch', which no loaded module provides",
                    "peer=127.0.0.1:\(client.localPort)")
                #expect(line?.hasPrefix("error ") == true)

                #expect(try host.servesAGoodConnection(port: host.ports[0]))
            }
        }

        @Test("every mapped port goes to its own service")
        func twoServices() async throws {
            try await withProxyHost(services: [ReportService.name, OriginProbeModule.name]) { host in
                let services = [(host.ports[0], ReportService.name), (host.ports[1], OriginProbeModule.name)]
                for (port, service) in services {
                    let client = try host.connect(port: port)
                    try client.send(Headers.v1TCP4)
                    let report = try client.report()
                    #expect(report["service"] == service, "port \(port)")
                    #expect(report["serverport"] == "\(port)")
                    #expect(report["ip"] == "203.0.113.7")
                }
                let listed = services.sorted { $0.0 < $1.0 }.map { "\($0.0) -> \($0.1)" }.joined(separator: ", ")
                #expect(host.logs.contains("PROXY protocol ports: \(listed); trusted proxies: 127.0.0.1/32, ::1/128"))
            }
        }
    }
}

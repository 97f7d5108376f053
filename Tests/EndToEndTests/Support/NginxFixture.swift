import Foundation
import SocketTestSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A real nginx with the stream module (`nginx -c <tmp>/nginx.conf -p <tmp>/ -e
/// <tmp>/error.log`), proxying TCP to a backend with `proxy_protocol on`.
///
/// nginx sends PROXY protocol v1 only (its stream module has no v2 sender).
///
/// Runs in the foreground as one process (`daemon off; master_process off;`), and
/// every path it writes is in the temporary directory (`pid`, `error_log`, and `-e`
/// so that not even the start-up log goes to /var/log/nginx), so it runs as root or
/// not without touching the system's nginx. The stream module is loaded from
/// ``streamModulePath`` (Debian's `libnginx-mod-stream`). The error log, at
/// ``Configuration/errorLogLevel`` (`info` logs every connection), is ``log``.
///
/// The knobs, in ``Configuration``:
///
/// | knob | nginx.conf |
/// | --- | --- |
/// | `listenHosts`, `listenPort` | `listen <host>:<port>;` (one per host; the port is allocated when nil) |
/// | `upstreamHost`, `upstreamPort` | `proxy_pass <host>:<port>;` |
/// | `proxyProtocol` | `proxy_protocol on;` |
/// | `extraServerDirectives` | added to the `server { }` block, e.g. `proxy_timeout 5s;` |
/// | `errorLogLevel` | `error_log <tmp>/error.log <level>;` |
final class NginxFixture: Sendable {
    /// Where Debian's libnginx-mod-stream installs the stream module.
    static let streamModulePath = "/usr/lib/nginx/modules/ngx_stream_module.so"

    struct Configuration: Sendable {
        var listenHosts = ["127.0.0.1"]
        /// The listening port; nil allocates a free one (see ``NginxFixture/listenPort``).
        var listenPort: Int?
        var upstreamHost = "127.0.0.1"
        var upstreamPort: Int
        var proxyProtocol = true
        /// Directives added to the `server { }` block, each with its `;`.
        var extraServerDirectives: [String] = []
        var errorLogLevel = "info"

        init(
            upstreamPort: Int,
            listenHosts: [String] = ["127.0.0.1"],
            listenPort: Int? = nil,
            upstreamHost: String = "127.0.0.1",
            proxyProtocol: Bool = true,
            extraServerDirectives: [String] = []
        ) {
            self.upstreamPort = upstreamPort
            self.listenHosts = listenHosts
            self.listenPort = listenPort
            self.upstreamHost = upstreamHost
            self.proxyProtocol = proxyProtocol
            self.extraServerDirectives = extraServerDirectives
        }

        /// The whole nginx.conf for `directory`, listening on `listenPort`.
        func render(directory: String, listenPort: Int) -> String {
            var lines = [
                "daemon off;",
                "master_process off;",
                "pid \(directory)/nginx.pid;",
                "error_log \(directory)/error.log \(self.errorLogLevel);",
                "load_module \(NginxFixture.streamModulePath);",
                "",
                "events {",
                "    worker_connections 256;",
                "}",
                "",
                "stream {",
                "    server {",
            ]
            lines += self.listenHosts.map { "        listen \(hostPort($0, listenPort));" }
            lines.append("        proxy_pass \(hostPort(self.upstreamHost, self.upstreamPort));")
            if self.proxyProtocol { lines.append("        proxy_protocol on;") }
            lines += self.extraServerDirectives.map { "        \($0)" }
            lines += ["    }", "}"]
            return lines.joined(separator: "\n") + "\n"
        }
    }

    let configuration: Configuration
    /// Where clients connect: `listenHosts` on this port.
    let listenPort: Int
    let directory: TemporaryDirectory
    let configPath: String
    let process: ManagedProcess

    private init(
        configuration: Configuration,
        listenPort: Int,
        directory: TemporaryDirectory,
        configPath: String,
        process: ManagedProcess
    ) {
        self.configuration = configuration
        self.listenPort = listenPort
        self.directory = directory
        self.configPath = configPath
        self.process = process
    }

    /// Writes the config, starts nginx and waits until every listen address listens.
    /// Throws (the test fails) if nginx or its stream module is not installed, if it
    /// exits, or if it never listens.
    static func start(_ configuration: Configuration, timeout: Duration = .seconds(10)) async throws -> NginxFixture {
        guard access(Self.streamModulePath, R_OK) == 0 else {
            throw FixtureError(
                "nginx's stream module is needed by this test but \(Self.streamModulePath) is missing; "
                    + "install it with: apt-get install nginx libnginx-mod-stream")
        }
        let listenPort = try configuration.listenPort ?? FreePort.allocate()
        let directory = try TemporaryDirectory(prefix: "nginx")
        let configPath = try directory.write(
            configuration.render(directory: directory.path, listenPort: listenPort), to: "nginx.conf")
        let process = try await launchServer(
            program: "nginx",
            installHint: "apt-get install nginx libnginx-mod-stream",
            arguments: ["-c", configPath, "-p", directory.path + "/", "-e", directory.file("error.log")],
            directory: directory,
            listeners: configuration.listenHosts.map { ($0, listenPort) },
            timeout: timeout
        )
        return NginxFixture(
            configuration: configuration,
            listenPort: listenPort,
            directory: directory,
            configPath: configPath,
            process: process
        )
    }

    /// nginx's error log so far (at `info`: one line per connection and upstream),
    /// then whatever it wrote to stdout and stderr.
    var log: String {
        let errorLog = FileManager.default.contents(atPath: self.directory.file("error.log"))
            .map { String(decoding: $0, as: UTF8.self) } ?? ""
        return errorLog + self.process.output
    }

    /// Stops nginx (SIGTERM: fast shutdown, then SIGKILL) and reaps it.
    @discardableResult
    func stop() -> ManagedProcess.Termination {
        self.process.stop()
    }
}

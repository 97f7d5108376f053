import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import NetHostMetrics

/// The metrics port's HTTP stages (`MetricsPipeline.addStages`: NIO's HTTP/1.1 server
/// pipeline, the idle timeout, `MetricsHTTPHandler`) on an `EmbeddedChannel`, with a
/// fixed page: what each request gets, byte for byte where it matters.
@Suite("metrics: the HTTP handler")
struct MetricsHTTPHandlerTests {
    static let page = Array("# HELP x_total X.\n# TYPE x_total counter\nx_total 3\n".utf8)

    /// A connected channel with the metrics stages.
    static func makeChannel() async throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try MetricsPipeline.addStages(to: channel.pipeline.syncOperations, logger: Logger(label: "test")) { loop in
            loop.makeSucceededFuture(Self.page)
        }
        try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 40000)).get()
        return channel
    }

    /// Everything the channel wrote, as text.
    static func written(_ channel: EmbeddedChannel) throws -> String {
        var text = ""
        while let data = try channel.readOutbound(as: IOData.self) {
            guard case .byteBuffer(let buffer) = data else { continue }
            text += String(buffer: buffer)
        }
        return text
    }

    static func send(_ request: String, to channel: EmbeddedChannel) throws {
        try channel.writeInbound(ByteBuffer(string: request))
    }

    @Test("GET /metrics answers 200 with Prometheus' text format and the page")
    func getMetrics() async throws {
        let channel = try await Self.makeChannel()
        try Self.send("GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n", to: channel)
        let response = try Self.written(channel)
        #expect(response.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(response)")
        #expect(response.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"))
        #expect(response.contains("Content-Length: \(Self.page.count)\r\n"))
        #expect(response.hasSuffix("\r\n\r\n" + String(decoding: Self.page, as: UTF8.self)), "\(response)")
        #expect(channel.isActive, "HTTP/1.1 keeps the connection open unless asked not to")
        _ = try? channel.finish()
    }

    @Test("a query string gets the same page", arguments: ["/metrics?", "/metrics?name[]=x"])
    func query(uri: String) async throws {
        let channel = try await Self.makeChannel()
        try Self.send("GET \(uri) HTTP/1.1\r\nHost: localhost\r\n\r\n", to: channel)
        #expect(try Self.written(channel).hasPrefix("HTTP/1.1 200 OK\r\n"))
        _ = try? channel.finish()
    }

    @Test("HEAD /metrics answers the headers, with the page's length, and no body")
    func head() async throws {
        let channel = try await Self.makeChannel()
        try Self.send("HEAD /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n", to: channel)
        let response = try Self.written(channel)
        #expect(response.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(response.contains("Content-Length: \(Self.page.count)\r\n"))
        #expect(response.hasSuffix("\r\n\r\n"), "a body followed: \(response)")
        _ = try? channel.finish()
    }

    @Test("another path is 404, another method 405 with Allow", arguments: [
        ("GET / HTTP/1.1", "HTTP/1.1 404 Not Found"),
        ("GET /metricsx HTTP/1.1", "HTTP/1.1 404 Not Found"),
        ("GET /metrics/ HTTP/1.1", "HTTP/1.1 404 Not Found"),
        ("POST /metrics HTTP/1.1", "HTTP/1.1 405 Method Not Allowed"),
        ("DELETE /metrics HTTP/1.1", "HTTP/1.1 405 Method Not Allowed"),
    ])
    func notFoundAndNotAllowed(requestLine: String, status: String) async throws {
        let channel = try await Self.makeChannel()
        try Self.send("\(requestLine)\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n", to: channel)
        let response = try Self.written(channel)
        #expect(response.hasPrefix(status + "\r\n"), "\(response)")
        #expect(!response.contains("x_total"), "the page was served: \(response)")
        if status.contains("405") { #expect(response.contains("Allow: GET, HEAD\r\n")) }
        _ = try? channel.finish()
    }

    @Test("a request NIO cannot parse is answered 400 and the connection closed")
    func badRequest() async throws {
        let channel = try await Self.makeChannel()
        // NIO's error handler answers and closes; whether the decoder's error also
        // reaches the caller is NIO's business, so it is not asserted.
        try? Self.send("BLAH\r\n\r\n", to: channel)
        let response = try Self.written(channel)
        #expect(response.hasPrefix("HTTP/1.1 400 Bad Request\r\n"), "\(response)")
        #expect(!channel.isActive)
    }

    @Test("two requests on one connection get two answers in order; Connection: close closes after the answer")
    func keepAliveThenClose() async throws {
        let channel = try await Self.makeChannel()
        try Self.send(
            "GET /nothing HTTP/1.1\r\nHost: localhost\r\n\r\nGET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            to: channel
        )
        let response = try Self.written(channel)
        let notFound = try #require(response.range(of: "HTTP/1.1 404 Not Found"))
        let ok = try #require(response.range(of: "HTTP/1.1 200 OK"))
        #expect(notFound.lowerBound < ok.lowerBound)
        #expect(response.contains("Connection: close\r\n"))
        #expect(!channel.isActive, "Connection: close was not honoured")
    }

    @Test("HTTP/1.0 without keep-alive is closed after the answer")
    func http10() async throws {
        let channel = try await Self.makeChannel()
        try Self.send("GET /metrics HTTP/1.0\r\n\r\n", to: channel)
        #expect(try Self.written(channel).hasPrefix("HTTP/1.0 200 OK\r\n"))
        #expect(!channel.isActive)
    }

    @Test("a connection that sends nothing is closed at the idle timeout, not before; a request starts it again")
    func idleTimeout() async throws {
        let channel = try await Self.makeChannel()
        let loop = try #require(channel.eventLoop as? EmbeddedEventLoop)
        loop.advanceTime(by: MetricsModule.idleTimeout - .milliseconds(1))
        #expect(channel.isActive)
        try Self.send("GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n", to: channel)
        #expect(try Self.written(channel).hasPrefix("HTTP/1.1 200 OK\r\n"))
        loop.advanceTime(by: MetricsModule.idleTimeout - .milliseconds(1))
        #expect(channel.isActive, "the request did not start the idle time again")
        loop.advanceTime(by: .milliseconds(1))
        #expect(!channel.isActive)
    }

    @Test("a page that cannot be made is a 500, and the connection serves on")
    func failedPage() async throws {
        struct Broken: Error {}
        let channel = EmbeddedChannel()
        try MetricsPipeline.addStages(to: channel.pipeline.syncOperations, logger: Logger(label: "test")) { loop in
            loop.makeFailedFuture(Broken())
        }
        try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 40000)).get()
        try Self.send("GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n", to: channel)
        #expect(try Self.written(channel).hasPrefix("HTTP/1.1 500 Internal Server Error\r\n"))
        #expect(channel.isActive)
        _ = try? channel.finish()
    }
}

@Suite("metrics: routes")
struct MetricsRouteTests {
    @Test("method and path to route", arguments: [
        (HTTPMethod.GET, "/metrics", MetricsRoute.metrics(withBody: true)),
        (.HEAD, "/metrics", .metrics(withBody: false)),
        (.GET, "/metrics?x=1", .metrics(withBody: true)),
        (.PUT, "/metrics", .methodNotAllowed),
        (.GET, "/", .notFound),
        (.GET, "", .notFound),
        (.GET, "/Metrics", .notFound),
        (.GET, "http://host/metrics", .notFound),
    ])
    func route(method: HTTPMethod, uri: String, expected: MetricsRoute) {
        #expect(MetricsRoute(method: method, uri: uri) == expected)
    }
}

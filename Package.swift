// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "NetHost",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "nethost", targets: ["nethost"]),
        .library(name: "NetHost", targets: ["NetHost"]),
        .library(name: "LuaBridge", targets: ["LuaBridge"]),
        .library(name: "NetHostConfig", targets: ["NetHostConfig"]),
        .library(name: "NetHostLogging", targets: ["NetHostLogging"]),
        .library(name: "NetHostCore", targets: ["NetHostCore"]),
        .library(name: "NetHostLua", targets: ["NetHostLua"]),
        .library(name: "ProxyProtocol", targets: ["ProxyProtocol"]),
        .library(name: "ProxyModule", targets: ["ProxyModule"]),
        .library(name: "NetHostMetrics", targets: ["NetHostMetrics"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        // Lua 5.4 from the OS (liblua5.4-dev), plus a shim for the C API's macros.
        .systemLibrary(
            name: "CLua",
            pkgConfig: "lua5.4",
            providers: [.apt(["liblua5.4-dev"])]
        ),
        // CLua and the safe Swift face over it: the only importer of CLua.
        .target(name: "LuaBridge", dependencies: ["CLua"]),
        // Prosody's config semantics (a config is a Lua file) and the option registry.
        .target(
            name: "NetHostConfig",
            dependencies: [
                "LuaBridge",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        // The `log` option and its sinks.
        .target(
            name: "NetHostLogging",
            dependencies: [
                "NetHostConfig",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The PROXY protocol itself: a pure parser and encoder, no I/O.
        .target(name: "ProxyProtocol"),
        // The host core: connections, listeners, ports, timers, TLS. Knows neither Lua nor PROXY.
        .target(
            name: "NetHostCore",
            dependencies: [
                "NetHostConfig",
                "NetHostLogging",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The runtime of Lua modules: module API, Lua listeners, the `conn` API.
        .target(
            name: "NetHostLua",
            dependencies: [
                "LuaBridge",
                "NetHostConfig",
                "NetHostLogging",
                "NetHostCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            // The module API's Lua sources, compiled into the binary.
            resources: [
                .embedInCode("ModuleAPI/events.lua"),
                .embedInCode("ModuleAPI/moduleapi.lua"),
                .embedInCode("ModuleAPI/options.lua"),
                .embedInCode("ModuleAPI/prosody.lua"),
                .embedInCode("ModuleAPI/metrics.lua"),
                .embedInCode("ModuleAPI/shared.lua"),
                .embedInCode("ModuleAPI/modulemanager.lua"),
            ]
        ),
        // What a Swift service imports: the module manager, native modules, the server.
        .target(
            name: "NetHost",
            dependencies: [
                "LuaBridge",
                "NetHostConfig",
                "NetHostLogging",
                "NetHostCore",
                "NetHostLua",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ]
        ),
        // The native `net_proxy` module.
        .target(
            name: "ProxyModule",
            dependencies: [
                "NetHost",
                "NetHostLua",
                "LuaBridge",
                "ProxyProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        // The `metrics` module: the process's metrics in Prometheus' text format over HTTP,
        // and the host's own gauges read at each scrape.
        .target(
            name: "NetHostMetrics",
            dependencies: [
                "NetHost",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        .executableTarget(
            name: "nethost",
            dependencies: [
                "NetHost",
                "ProxyModule",
                "NetHostMetrics",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The benchmarks' bare-NIO reference server (scripts/bench), not part of NetHost.
        .executableTarget(
            name: "nio-baseline",
            dependencies: [
                "ProxyProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "bench/nio-baseline"
        ),
        .testTarget(name: "ProxyProtocolTests", dependencies: ["ProxyProtocol"]),
        // The test client and free ports on loopback, for every target that tests over
        // real sockets, the end-to-end tests included, which need nothing of NetHost.
        .target(name: "SocketTestSupport", path: "Tests/SocketTestSupport"),
        // Captured logs and a NetHost on loopback, shared by the test targets; it
        // re-exports SocketTestSupport.
        .target(
            name: "NetHostTestSupport",
            dependencies: [
                "NetHost",
                "SocketTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/NetHostTestSupport"
        ),
        .testTarget(
            name: "NetHostTests",
            dependencies: [
                "NetHost",
                "NetHostTestSupport",
                "LuaBridge",
                "NetHostConfig",
                "NetHostLogging",
                "NetHostCore",
                "NetHostLua",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ]
        ),
        .testTarget(
            name: "ProxyModuleTests",
            dependencies: [
                "ProxyModule",
                "NetHostTestSupport",
                "ProxyProtocol",
                "NetHost",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "NetHostMetricsTests",
            dependencies: [
                "NetHostMetrics",
                "NetHost",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        // Runs the built `nethost` binary against real HAProxy and nginx.
        .testTarget(
            name: "EndToEndTests",
            dependencies: [
                "ProxyProtocol",
                "SocketTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)

// swift-tools-version: 6.1
// Micro-benchmarks of NetHost's PROXY header parser, kept out of the root
// package so that its users never resolve the benchmark tooling.
//   cd Benchmarks && swift package benchmark
import PackageDescription

let package = Package(
    name: "NetHostBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "NetHost", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "ProxyParser",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "ProxyProtocol", package: "NetHost"),
            ],
            path: "Benchmarks/ProxyParser",
            plugins: [
                .plugin(name: "BenchmarkPlugin", package: "benchmark"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)

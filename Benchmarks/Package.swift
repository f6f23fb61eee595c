// swift-tools-version:6.1
//
// swift-ramcast benchmarks, a package of their own so that the library does not depend on the
// benchmark tooling:
//   ramcast-bench   the benchmark CLI users run on their hardware: local clusters in one process,
//                   one process per node across machines, sweeps with an SVG plot, `config`.
//   EngineHotPath   ordo-one/benchmark microbenchmarks of the engine's hot paths on the in-process
//                   fabric, with malloc counters: `swift package --package-path Benchmarks benchmark`.
import PackageDescription

// The library is the parent directory, and SwiftPM names a path dependency after its folder (a
// clone may be called `main`, `swift-ramcast`, ...).
let ramcast = String(Context.packageDirectory.split(separator: "/").dropLast().last ?? "swift-ramcast").lowercased()

let package = Package(
    name: "swift-ramcast-benchmarks",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "ramcast-bench", targets: ["ramcast-bench"]),
    ],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-atomics.git", from: "1.3.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "ramcast-bench",
            dependencies: [
                // RamCastProtocol and RamCastInProcess come with these products (see the report in
                // README "Benchmark"): RamCast brings RamCastProtocol, RamCastFabric brings RamCastInProcess.
                .product(name: "RamCast", package: ramcast),
                .product(name: "RamCastFabric", package: ramcast),
                .product(name: "RamCastRDMA", package: ramcast),
                .product(name: "RamCastChecker", package: ramcast),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            // The harness's own bookkeeping (per-node counters, histograms in a class) must not add
            // dynamic exclusivity checks to the measured loop. This flag applies to this target only,
            // never to the library's modules, which are measured as they are built for users.
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"])]
        ),
        .executableTarget(
            name: "EngineHotPath",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "RamCast", package: ramcast),
                .product(name: "RamCastFabric", package: ramcast),
            ],
            path: "Benchmarks/EngineHotPath",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)

// swift-tools-version:6.0
//
// swift-ramcast: atomic multicast over RDMA (RamCast, Middleware '21).
//
// Module map (each module has one job):
//   RamCastFabric     the `Fabric` abstraction: regions, connections, one-sided writes, completions,
//                     permissions. Pure Swift, no C imports: the protocol builds and tests anywhere.
//   RamCastInProcess  the in-process fabric: byte-buffer regions and a seeded scheduler that decides
//                     when each write becomes visible. Used by tests and by the no-NIC default.
//   RamCastProtocol   the sans-I/O RamCast engine (steps 1-3, ordering, delivery, slot release):
//                     memory observations in, writes to post out. No C imports.
//   RamCast           the public API and the runtime that polls: drivers, local clusters, config.
//   RamCastChecker    the property checker (spec section 11) for histories and delivery logs.
//   RamCastSimulation seeded, randomized whole-cluster runs on the in-process fabric, checked.
//   CRamCastVerbs     C shim over libibverbs and librdmacm (macro-wrapped verbs, errno capture).
//   RamCastRDMA       the RDMA fabric over the shim: RC queue pairs set up with rdma_cm.
//   RamCastFabricConformance  the one behaviour suite every fabric must pass (run by both test targets).
import PackageDescription

let package = Package(
    name: "swift-ramcast",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "RamCastFabric", targets: ["RamCastFabric", "RamCastInProcess"]),
        .library(name: "RamCastRDMA", targets: ["RamCastRDMA"]),
        .library(name: "RamCast", targets: ["RamCast"]),
        .library(name: "RamCastChecker", targets: ["RamCastChecker"]),
        .executable(name: "ramcast-demo", targets: ["ramcast-demo"]),
        .executable(name: "ramcast-check", targets: ["ramcast-check"]),
        .executable(name: "ramcast-sim", targets: ["ramcast-sim"]),
        .executable(name: "ramcast-node", targets: ["ramcast-node"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-atomics.git", from: "1.3.0"),
    ],
    targets: [
        .target(
            name: "RamCastFabric",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Atomics", package: "swift-atomics"),
            ]
        ),
        .target(
            name: "RamCastProtocol",
            dependencies: ["RamCastFabric"]
        ),
        .target(
            name: "RamCast",
            dependencies: [
                "RamCastFabric", "RamCastProtocol", "RamCastChecker",
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(name: "RamCastChecker"),
        .target(
            name: "RamCastSimulation",
            dependencies: ["RamCast", "RamCastProtocol", "RamCastFabric", "RamCastInProcess", "RamCastChecker"]
        ),
        .target(
            name: "RamCastInProcess",
            dependencies: ["RamCastFabric"]
        ),
        .target(
            name: "RamCastFabricConformance",
            dependencies: ["RamCastFabric"]
        ),
        .target(
            name: "CRamCastVerbs",
            linkerSettings: [.linkedLibrary("ibverbs"), .linkedLibrary("rdmacm")]
        ),
        .target(
            name: "RamCastRDMA",
            dependencies: [
                "RamCastFabric", "CRamCastVerbs",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "ramcast-demo",
            dependencies: [
                "RamCast", "RamCastProtocol", "RamCastFabric", "RamCastInProcess", "RamCastRDMA",
                "RamCastChecker", "RamCastSimulation",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "ramcast-check",
            dependencies: ["RamCastChecker", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .testTarget(name: "RamCastCheckerTests", dependencies: ["RamCastChecker"]),
        .executableTarget(
            name: "ramcast-node",
            dependencies: [
                "RamCast", "RamCastProtocol", "RamCastFabric", "RamCastRDMA",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "ramcast-sim",
            dependencies: [
                "RamCastSimulation",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(
            name: "RamCastFabricTests",
            dependencies: ["RamCastFabric", "RamCastInProcess", "RamCastFabricConformance"]
        ),
        .testTarget(
            name: "RamCastTests",
            dependencies: ["RamCast", "RamCastProtocol", "RamCastFabric", "RamCastInProcess", "RamCastSimulation", "RamCastChecker"]
        ),
        .testTarget(
            name: "RamCastRDMATests",
            dependencies: ["RamCastFabric", "RamCastRDMA", "RamCastInProcess", "RamCastFabricConformance", "RamCast", "RamCastProtocol"]
        ),
    ]
)

// swift-tools-version:6.0
//
// swift-ramcast fuzz targets, a package of their own: they are built only with libFuzzer
// (`-sanitize=fuzzer`), which brings its own `main`, so they must stay out of the library's build.
// Build and run them with Scripts/fuzz.sh (scratch path .build-fuzz).
//   FuzzConfiguration  ClusterConfiguration.parse with environment overrides: never a trap, and a
//                      configuration it accepts always makes a Layout (nothing accepted is lost).
//   FuzzDeliveryLog    DeliveryLog.load over in-memory files, then the checker on what it loaded.
import PackageDescription

// The library is the parent directory; SwiftPM names a path dependency after its folder.
let ramcast = String(Context.packageDirectory.split(separator: "/").dropLast().last ?? "swift-ramcast").lowercased()

let package = Package(
    name: "swift-ramcast-fuzz",
    platforms: [.macOS(.v14)],
    dependencies: [.package(path: "..")],
    targets: [
        .target(name: "CFuzzerDriver"),
        .executableTarget(
            name: "FuzzConfiguration",
            dependencies: ["CFuzzerDriver", .product(name: "RamCast", package: ramcast)]
        ),
        .executableTarget(
            name: "FuzzDeliveryLog",
            dependencies: ["CFuzzerDriver", .product(name: "RamCastChecker", package: ramcast)]
        ),
    ]
)

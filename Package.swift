// swift-tools-version: 6.1
import PackageDescription

// Every target gets the same strict settings (swift-log's approach): Swift 6
// language mode is the tools-version default; these add the rest.
let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "vigil",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "vigil", targets: ["vigil"]),
        .library(name: "VigilClient", targets: ["VigilClient"]),
        .executable(name: "vigil-bench", targets: ["vigil-bench"]),
        .executable(name: "vigil-conformance", targets: ["vigil-conformance"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        // `traits: []` keeps the trait flags stable, so swift build / swift test
        // do not recompile swift-protobuf each time.
        .package(url: "https://github.com/apple/swift-protobuf.git", exact: "1.39.0", traits: []),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.1"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        // SHA-256 (hash chain, token hashes) and Ed25519 (signed checkpoints).
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        // TLS and mutual TLS for the protocol port.
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        // `vigil serve --config vigil.toml`.
        .package(url: "https://github.com/LebJe/TOMLKit.git", from: "0.6.0"),
        // Metrics (the storage records through CoreMetrics only) and their
        // Prometheus text exposition on the optional metrics listener.
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        // zlib from the system (Debian: zlib1g-dev), for COMPRESSED frames and disk parts.
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        // C library functions Glibc's Swift module leaves out (mallopt).
        .systemLibrary(name: "CVigilSystem"),
        // CRC-32C by the CPU's instruction (SSE 4.2), header-only.
        .systemLibrary(name: "CCRC32C"),
        // SHA-256 by the CPU's SHA extensions, header-only: the hash chain's leaves and heads.
        .systemLibrary(name: "CSHA256"),

        // Generated protobuf code (Protos/generate.sh). DO NOT EDIT by hand.
        .target(
            name: "VigilProto",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")],
            exclude: ["Generated/FINGERPRINT"]
        ),

        // Event model, validation, limits, status codes, errors, filters. No NIO.
        .target(
            name: "VigilCore",
            dependencies: [
                "VigilProto",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),

        // The wire codec: preface, frames, compression. NIOCore only.
        .target(
            name: "VigilWire",
            dependencies: [
                "VigilCore", "VigilProto", "CZlib",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),

        // Storage behind the `EventStore` protocol. No networking.
        .target(
            name: "VigilStorage",
            dependencies: [
                "VigilCore", "VigilProto", "CZlib", "CCRC32C", "CSHA256", "CVigilSystem",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ]
        ),

        // The server: connections, calls, services, lifecycle.
        .target(
            name: "VigilServer",
            dependencies: [
                "VigilCore", "VigilProto", "VigilWire", "VigilStorage",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),

        // The Swift client library (async/await).
        .target(
            name: "VigilClient",
            dependencies: [
                "VigilCore", "VigilProto", "VigilWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),

        // The `vigil` command line: serve, ingest, query, get.
        .executableTarget(
            name: "vigil",
            dependencies: [
                "CVigilSystem", "VigilCore", "VigilProto", "VigilServer", "VigilClient", "VigilStorage",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "TOMLKit", package: "TOMLKit"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),

        // The benchmark harness: a deterministic generator of realistic audit events...
        .target(
            name: "VigilBenchKit",
            dependencies: [
                "VigilCore", "VigilProto",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),

        // ...and `vigil-bench`, the workloads that drive a `vigil` server with it.
        .executableTarget(
            name: "vigil-bench",
            dependencies: [
                "VigilBenchKit", "VigilClient", "VigilCore", "VigilProto", "VigilStorage",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Sources/VigilBench"
        ),

        // The conformance scenario (Clients/conformance/SCENARIO.md) with the Swift
        // client; Clients/conformance/run.sh compares it with the other clients.
        .executableTarget(
            name: "vigil-conformance",
            dependencies: [
                "VigilClient", "VigilCore", "VigilProto",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Sources/VigilConformance"
        ),

        .testTarget(
            name: "VigilCoreTests",
            dependencies: ["VigilCore", "VigilProto"],
            resources: []
        ),
        .testTarget(
            name: "VigilStorageTests",
            dependencies: [
                "VigilStorage", "VigilCore", "VigilProto",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "PropertyBased", package: "swift-property-based"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        .testTarget(
            name: "VigilWireTests",
            dependencies: [
                "VigilWire", "VigilCore", "VigilProto",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "VigilServerTests",
            dependencies: [
                "VigilServer", "VigilClient", "VigilWire", "VigilCore", "VigilProto", "VigilStorage",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            // TLS certificates and the script that made them; tests read them by path.
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "VigilCLITests",
            dependencies: [
                "vigil", "vigil-conformance", "vigil-bench", "VigilClient", "VigilProto", "VigilCore", "VigilStorage",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "VigilBenchTests",
            dependencies: [
                "VigilBenchKit", "vigil-bench", "vigil", "VigilCore", "VigilProto",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
    ]
)

// The libFuzzer targets (Tests/Fuzz/run.sh) exist only when VIGIL_FUZZ=1, which
// run.sh sets for its own scratch path (.build-fuzz): the project's modules that
// read untrusted bytes are then built with libFuzzer's coverage instrumentation
// and AddressSanitizer, the dependencies as usual. A normal `swift build` /
// `swift test` never sees any of it.
if Context.environment["VIGIL_FUZZ"] == "1" {
    let sanitizers = "-sanitize=fuzzer,address"
    for target in package.targets where ["VigilProto", "VigilCore", "VigilWire", "VigilStorage"].contains(target.name) {
        target.swiftSettings = (target.swiftSettings ?? []) + [.unsafeFlags([sanitizers])]
    }
    package.targets += [
        // libFuzzer's `LLVMFuzzerRunDriver`, which vigil-fuzz's `main` calls.
        .systemLibrary(name: "CLibFuzzer", path: "Tests/Fuzz/CLibFuzzer"),
        .executableTarget(
            name: "vigil-fuzz",
            dependencies: [
                "CLibFuzzer", "VigilCore", "VigilProto", "VigilWire", "VigilStorage",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Tests/Fuzz/Sources",
            swiftSettings: [.unsafeFlags([sanitizers, "-parse-as-library"])],
            // lld: gold fails on the duplicate `main` (libFuzzer's and this target's).
            linkerSettings: [.unsafeFlags([sanitizers, "-use-ld=lld"])]
        ),
    ]
}

for target in package.targets where target.type != .system {
    target.swiftSettings = (target.swiftSettings ?? []) + strictSettings
}

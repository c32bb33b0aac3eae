// swift-tools-version:6.0
import Foundation
import PackageDescription

// Dependencies flow one way: Kernels -> Encoder -> Training -> polyhead (CLI).
// SafeTensors and Tokenizers stand alone; PluginHost sees only the C ABI in CPolyhead.
let package = Package(
    name: "Polyhead",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "polyhead", targets: ["polyhead"]),
        .library(name: "SafeTensors", targets: ["SafeTensors"]),
        .library(name: "Tokenizers", targets: ["Tokenizers"]),
        .library(name: "Encoder", targets: ["Encoder"]),
        // Task-head plugins: loaded at run time through the C ABI in CPolyhead.
        .library(name: "ClassificationHead", type: .dynamic, targets: ["ClassificationHead"]),
        .library(name: "RegressionHead", type: .dynamic, targets: ["RegressionHead"]),
        .library(name: "TokenClassificationHead", type: .dynamic, targets: ["TokenClassificationHead"]),
        // Router and adapter plugins, loaded the same way.
        .library(name: "MMoERouter", type: .dynamic, targets: ["MMoERouter"]),
        .library(name: "LoRAAdapter", type: .dynamic, targets: ["LoRAAdapter"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
    ],
    targets: [
        // System libraries.
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CFFI", path: "Sources/CFFI", providers: [.apt(["libffi-dev"])]),
        // The plugin ABI: the only thing a plugin includes.
        .target(name: "CPolyhead", path: "Sources/CPolyhead"),

        // Core modules.
        .target(name: "Kernels", dependencies: ["COpenBLAS"], swiftSettings: uncheckedFast),
        .target(name: "SafeTensors", swiftSettings: fast),
        .target(name: "Tokenizers", swiftSettings: fast),
        .target(name: "Encoder", dependencies: ["Kernels", "SafeTensors"], swiftSettings: fast),
        .target(name: "CFFIShims", dependencies: ["CFFI"]),
        // SafeTensors: adapters export and import in PEFT's layout (PEFTAdapterFormat.swift).
        .target(name: "PluginHost", dependencies: ["CPolyhead", "CFFI", "CFFIShims", "COpenBLAS", "SafeTensors"], swiftSettings: fast),

        // Plugins see CPolyhead and nothing else of Polyhead; PluginSupport is linked
        // statically into each (shared head math), never into the host.
        .target(name: "PluginSupport", dependencies: ["CPolyhead"], path: "Plugins/PluginSupport", swiftSettings: fast),
        .target(name: "ClassificationHead", dependencies: ["CPolyhead", "PluginSupport"],
                path: "Plugins/ClassificationHead", swiftSettings: fast),
        .target(name: "RegressionHead", dependencies: ["CPolyhead", "PluginSupport"],
                path: "Plugins/RegressionHead", swiftSettings: fast),
        .target(name: "TokenClassificationHead", dependencies: ["CPolyhead", "PluginSupport"],
                path: "Plugins/TokenClassificationHead", swiftSettings: fast),
        .target(name: "MMoERouter", dependencies: ["CPolyhead", "PluginSupport"],
                path: "Plugins/MMoERouter", swiftSettings: fast),
        .target(name: "LoRAAdapter", dependencies: ["CPolyhead", "PluginSupport"],
                path: "Plugins/LoRAAdapter", swiftSettings: fast),
        .target(name: "Training", dependencies: [
            "Kernels", "Encoder", "Tokenizers", "PluginHost", "SafeTensors",
            .product(name: "Yams", package: "Yams"),
        ], swiftSettings: fast),
        .executableTarget(name: "polyhead", dependencies: [
            "Encoder", "Tokenizers", "SafeTensors", "Training", "PluginHost",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        // Tests: one target per module; fixtures written by scripts/reference/*.py.
        .testTarget(name: "polyheadTests"),  // runs the built polyhead executable
        .testTarget(name: "KernelsTests", dependencies: ["Kernels"]),
        .testTarget(name: "SafeTensorsTests", dependencies: ["SafeTensors"]),
        .testTarget(name: "TokenizersTests", dependencies: ["Tokenizers"]),
        .testTarget(name: "EncoderTests", dependencies: ["Encoder", "Tokenizers", "SafeTensors"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training"]),
        .testTarget(name: "PluginHostTests", dependencies: ["PluginHost", "SafeTensors", "Encoder"]),
    ]
)

/// Numeric modules are compiled with optimisation even in debug builds: tests on a real
/// checkpoint would otherwise take minutes.
var fast: [SwiftSetting] { [.unsafeFlags(["-O"])] }
/// Kernels index raw buffers in hot loops whose bounds are checked by their callers, and are
/// compiled for the vector unit of the machine that builds them (see `vectorTarget`).
var uncheckedFast: [SwiftSetting] { [.unsafeFlags(["-Ounchecked"] + vectorTarget)] }

/// Without a target CPU, swiftc emits SSE2 only: SIMD8<Float> is split over two xmm registers
/// and every fused multiply-add becomes a call to fmaf. On an x86-64 build machine with AVX2
/// and FMA the kernels are compiled for Haswell-class CPUs (ymm registers, vfmadd), which
/// roughly halves the time of every non-GEMM kernel (docs/performance.md). Such a binary
/// needs AVX2 and FMA where it runs; POLYHEAD_TARGET_CPU overrides the choice (a CPU name
/// LLVM knows, e.g. znver3, or "generic" for a portable build).
var vectorTarget: [String] {
    if let cpu = ProcessInfo.processInfo.environment["POLYHEAD_TARGET_CPU"], !cpu.isEmpty {
        return cpu == "generic" ? [] : ["-target-cpu", cpu]
    }
    #if arch(x86_64) && os(Linux)
    guard let cpuinfo = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
          let flags = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return [] }
    let names = Set(flags.split(separator: " ").map(String.init))
    return names.isSuperset(of: ["avx2", "fma"]) ? ["-target-cpu", "haswell"] : []
    #else
    return []
    #endif
}

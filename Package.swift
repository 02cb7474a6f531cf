// swift-tools-version:6.0
//
// nanochat-swift: train and study small hybrid Transformer/Mamba language models on the CPU.
//
// Layers (each imports only those to its left):
//   CBLAS (system library), CVectorMath (C header), CHost (C), CBF16 (C) <- Tensor <- SelectiveScan <- Blocks <- Train <- nanochat (CLI)
//                                                                 ^------- bench (executable)
//   MPISystem (system library, Open MPI) <- CMPI (C) <- Train
//   CCompression (C: zlib, Snappy, zstd) <- Corpus (parquet, JSONL, text) <- Train
//   CLAPACKE (system library) is linked by the tests alone. docs/ARCHITECTURE.md has the map.
//
// Code generation: release builds target the host CPU (`-target-cpu native`) so the SIMD16
// kernels compile to AVX2/FMA or AVX-512. Set NANOCHAT_PORTABLE=1 when building to get a
// baseline x86-64 / aarch64 binary that runs on any machine of the architecture.
import PackageDescription
import Foundation

let portable = ProcessInfo.processInfo.environment["NANOCHAT_PORTABLE"].map { $0 != "0" && !$0.isEmpty } ?? false
// NANOCHAT_TARGET_CPU=NAME builds for another CPU than this one (an LLVM CPU name such as
// sapphirerapids or znver4), to carry the executables to a machine without a toolchain.
let targetCPU = ProcessInfo.processInfo.environment["NANOCHAT_TARGET_CPU"].flatMap { $0.isEmpty ? nil : $0 } ?? "native"
let hostCPU: [SwiftSetting] = portable ? [] : [.unsafeFlags(["-target-cpu", targetCPU])]
let kernelSettings: [SwiftSetting] = hostCPU + [.unsafeFlags(["-enforce-exclusivity=unchecked"])]
let hostC: [CSetting] = portable ? [] : [.unsafeFlags(["-march=\(targetCPU)"])]

// NANOCHAT_LIBRARIES_ONLY=1 (set by scripts/test.sh): the unit tests need the libraries
// alone, so that build leaves out the two executables and the packages only they use (the
// HTTP server's); the scripts run the executables of the ordinary release build.
let librariesOnly = ProcessInfo.processInfo.environment["NANOCHAT_LIBRARIES_ONLY"] == "1"

let package = Package(
    name: "nanochat",
    products: [
        .library(name: "Tensor", targets: ["Tensor"]),
        .library(name: "SelectiveScan", targets: ["SelectiveScan"]),
        .library(name: "Blocks", targets: ["Blocks"]),
        .library(name: "Tokenizer", targets: ["Tokenizer"]),
        .library(name: "Inference", targets: ["Inference"]),
        .library(name: "Train", targets: ["Train"]),
        .library(name: "Interop", targets: ["Interop"]),
        .library(name: "Serve", targets: ["Serve"]),
    ],
    dependencies: [],
    targets: [
        // OpenBLAS's CBLAS interface (Debian: libopenblas-dev).
        .systemLibrary(
            name: "CBLAS",
            path: "Sources/CBLAS",
            providers: [.apt(["libopenblas-dev"])]
        ),
        // LAPACKE (Debian: liblapacke-dev), for the tests only: the exact SVD that Muon's
        // Newton–Schulz orthogonalisation is checked against.
        .systemLibrary(
            name: "CLAPACKE",
            path: "Sources/CLAPACKE",
            providers: [.apt(["liblapacke-dev"])]
        ),
        // Open MPI (Debian: libopenmpi-dev), for data-parallel training across processes.
        .systemLibrary(
            name: "MPISystem",
            path: "Sources/MPISystem",
            pkgConfig: "ompi-c",
            providers: [.apt(["libopenmpi-dev"])]
        ),
        // The MPI calls training makes, as plain C functions (see its header).
        .target(name: "CMPI", dependencies: ["MPISystem"], path: "Sources/CMPI"),
        // zlib, Snappy and zstd decompression for corpus files (see its header).
        .target(
            name: "CCompression",
            path: "Sources/CCompression",
            linkerSettings: [.linkedLibrary("z"), .linkedLibrary("snappy"), .linkedLibrary("zstd")]
        ),
        // Reading text corpora: parquet, JSONL (optionally zstd-compressed) and plain text.
        .target(name: "Corpus", dependencies: ["CCompression"]),
        // Lane-wise square root as one vector instruction (see its header).
        .target(name: "CVectorMath", path: "Sources/CVectorMath"),
        // The CPU's SIMD facts, and the OpenBLAS core corrected before main (see its header).
        // Compiled for the same target as the kernels, so it can say what they were built for.
        .target(
            name: "CHost",
            path: "Sources/CHost",
            cSettings: hostC,
            linkerSettings: [.linkedLibrary("openblas")]
        ),
        // bf16 matrix products: packing and the AMX, AVX512_BF16 and portable kernels, each
        // compiled for its instructions by function attributes and chosen at run time
        // (see its header), so no host flag is needed.
        .target(name: "CBF16", dependencies: ["CHost"], path: "Sources/CBF16"),
        .target(
            name: "Tensor",
            dependencies: ["CBLAS", "CVectorMath", "CHost", "CBF16"],
            swiftSettings: kernelSettings
        ),
        .target(
            name: "SelectiveScan",
            dependencies: ["Tensor"],
            swiftSettings: kernelSettings
        ),
        .target(
            name: "Blocks",
            dependencies: ["Tensor", "SelectiveScan"],
            swiftSettings: hostCPU
        ),
        // The BPE tokenizer: training, encoding, its files; and the digest of its identity.
        .target(name: "Tokenizer", dependencies: ["Tensor"], swiftSettings: hostCPU),
        // Decoding: one sequence's cache and sampler, the generator, the terminal chat, the
        // engine that steps many requests together, conversations and the calculator.
        .target(name: "Inference", dependencies: ["Blocks", "Tensor", "Tokenizer"], swiftSettings: hostCPU),
        .target(
            name: "Train",
            dependencies: ["Blocks", "Tensor", "Tokenizer", "Inference", "CMPI", "Corpus"],
            swiftSettings: hostCPU
        ),
        // Models and tokenizers in other tools' formats: Hugging Face folders, nanochat's layout.
        .target(name: "Interop", dependencies: ["Blocks", "Tensor", "Tokenizer", "Inference"], swiftSettings: hostCPU),
        // The OpenAI-compatible protocol over the engine.
        .target(name: "Serve", dependencies: ["Inference", "Tokenizer", "Blocks", "Tensor"], swiftSettings: hostCPU),
        .testTarget(
            name: "TensorTests",
            dependencies: ["Tensor", "CLAPACKE"],
            swiftSettings: hostCPU
        ),
        .testTarget(
            name: "BlocksTests",
            dependencies: ["Blocks", "SelectiveScan", "Tensor"],
            exclude: ["Fixtures"],
            swiftSettings: hostCPU
        ),
        .testTarget(name: "TokenizerTests", dependencies: ["Tokenizer", "Tensor"], exclude: ["Fixtures"], swiftSettings: hostCPU),
        .testTarget(
            name: "InferenceTests",
            dependencies: ["Inference", "Tokenizer", "Blocks", "Tensor"],
            exclude: ["Fixtures"],
            swiftSettings: hostCPU
        ),
        .testTarget(name: "TrainTests", dependencies: ["Train", "Tokenizer", "Blocks", "Tensor", "Corpus"], swiftSettings: hostCPU),
        .testTarget(name: "InteropTests", dependencies: ["Interop", "Tokenizer", "Blocks", "Tensor"], swiftSettings: hostCPU),
        .testTarget(name: "ServeTests", dependencies: ["Serve", "Inference", "Tokenizer", "Blocks", "Tensor"], swiftSettings: hostCPU),
        .testTarget(
            name: "CorpusTests",
            dependencies: ["Corpus"],
            exclude: ["Fixtures"],
            swiftSettings: hostCPU
        ),
        .testTarget(
            name: "SelectiveScanTests",
            dependencies: ["SelectiveScan", "Tensor"],
            swiftSettings: hostCPU
        ),
    ]
)

if !librariesOnly {
    package.dependencies += [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // The HTTP server behind `nanochat serve`.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
    ]
    package.targets += [
        .executableTarget(
            name: "nanochat",
            dependencies: [
                "Train", "Blocks", "Tensor", "Corpus", "Tokenizer", "Inference", "Interop", "Serve",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ],
            // The chat page `nanochat serve` serves, and the modeling file `nanochat export`
            // ships for hybrids, compiled into the binary.
            resources: [.embedInCode("chat.html"), .embedInCode("modeling_nanochat_hybrid.py")],
            swiftSettings: hostCPU
        ),
        .executableTarget(
            name: "bench",
            dependencies: [
                "Tensor", "SelectiveScan", "Blocks", "Train", "CBLAS", "Corpus", "Tokenizer", "Inference",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: hostCPU
        ),
    ]
    package.products += [
        .executable(name: "nanochat", targets: ["nanochat"]),
        .executable(name: "bench", targets: ["bench"]),
    ]
}

// The fuzz targets (Fuzz/Fuzz.swift), only when NANOCHAT_FUZZ=1: they are built with
// libFuzzer's instrumentation and entry point, which an ordinary build must not have.
// scripts/fuzz.sh builds and runs them.
if ProcessInfo.processInfo.environment["NANOCHAT_FUZZ"] == "1" {
    package.targets.append(.executableTarget(name: "nanochat-fuzz", dependencies: ["Tensor", "Blocks", "Train", "Corpus", "Tokenizer", "Interop"], path: "Fuzz"))
    package.products.append(.executable(name: "nanochat-fuzz", targets: ["nanochat-fuzz"]))
}

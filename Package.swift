// swift-tools-version:6.2
//
// nanochat-swift: train, study and serve small hybrid Transformer/Mamba language models on the CPU.
//
// Layers (each imports only those to its left; docs/ARCHITECTURE.md has the map, and a test
// checks it against the imports):
//   CBLAS, CVectorMath, CHost, CBF16 (C) <- Tensor <- SelectiveScan <- Blocks <- Tokenizer <- Inference <- Train
//   Inference, Corpus <- Evaluation (nanochat's CORE and chat benchmarks; Yams) <- Train
//   Inference <- Interop (Hugging Face, nanochat formats);  Inference <- Serve (the OpenAI API over HTTP)
//   MPISystem (Open MPI) <- CMPI (C) <- Train;  CCompression (C: zlib, Snappy, zstd, LZ4, Brotli) <- Corpus <- Train
//   nanochat (the CLI) and bench (the benchmark) over all of them; CLAPACKE is linked by the tests alone.
//
// Code generation: the default trait NativeCPU compiles for this machine's CPU
// (`-target-cpu native`), which the SIMD16 kernels need to become AVX2/FMA or AVX-512 code.
// `swift build --disable-default-traits` builds for any CPU of the architecture, and adding
// `-Xswiftc -target-cpu -Xswiftc NAME -Xcc -march=NAME` builds for another CPU (a machine the
// executables will be carried to). The bf16 kernels (CBF16) choose their instructions at run
// time whatever the build. The trait Fuzzing turns Fuzz/Fuzz.swift into libFuzzer targets
// (scripts/fuzz.sh builds them so); without it, that executable only says how to build it.
import PackageDescription

let native: BuildSettingCondition = .when(traits: ["NativeCPU"])
let hostCPU: [SwiftSetting] = [.unsafeFlags(["-target-cpu", "native"], native)]
let kernelSettings: [SwiftSetting] = hostCPU + [.unsafeFlags(["-enforce-exclusivity=unchecked"])]
let hostC: [CSetting] = [.unsafeFlags(["-march=native"], native)]

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
        .executable(name: "nanochat", targets: ["nanochat"]),
        .executable(name: "bench", targets: ["bench"]),
    ],
    traits: [
        .trait(name: "NativeCPU", description: "Compile for this machine's CPU (-target-cpu native): the SIMD kernels' speed."),
        .trait(name: "Fuzzing", description: "Build nanochat-fuzz as libFuzzer targets (with -sanitize=fuzzer; scripts/fuzz.sh)."),
        .default(enabledTraits: ["NativeCPU"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // The HTTP server behind `nanochat serve`.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        // Hummingbird's networking, for the server's connection handling.
        .package(url: "https://github.com/apple/swift-nio", from: "2.81.0"),
        // YAML, for the CORE evaluation bundle's core.yaml.
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.0"),
    ],
    targets: [
        // OpenBLAS's CBLAS interface (Debian: libopenblas-dev).
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS", providers: [.apt(["libopenblas-dev"])]),
        // LAPACKE (Debian: liblapacke-dev), for the tests only: the exact SVD that Muon's
        // Newton–Schulz orthogonalisation is checked against.
        .systemLibrary(name: "CLAPACKE", path: "Sources/CLAPACKE", providers: [.apt(["liblapacke-dev"])]),
        // Open MPI (Debian: libopenmpi-dev), for data-parallel training across processes.
        .systemLibrary(name: "MPISystem", path: "Sources/MPISystem", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])]),
        // The MPI calls training makes, as plain C functions (see its header).
        .target(name: "CMPI", dependencies: ["MPISystem"], path: "Sources/CMPI"),
        // zlib, Snappy and zstd decompression for corpus files (see its header).
        .target(
            name: "CCompression",
            path: "Sources/CCompression",
            linkerSettings: [.linkedLibrary("z"), .linkedLibrary("snappy"), .linkedLibrary("zstd"), .linkedLibrary("lz4"),
                             .linkedLibrary("brotlidec")]
        ),
        // Reading text corpora: parquet, JSONL (optionally zstd-compressed) and plain text.
        .target(name: "Corpus", dependencies: ["CCompression"]),
        // Lane-wise square root as one vector instruction (see its header).
        .target(name: "CVectorMath", path: "Sources/CVectorMath"),
        // The CPU's SIMD facts, and the OpenBLAS core checked and corrected at start-up (see its
        // header). Compiled for the same target as the kernels, so it can say what they were built for.
        .target(name: "CHost", path: "Sources/CHost", cSettings: hostC, linkerSettings: [.linkedLibrary("openblas")]),
        // bf16 matrix products: packing and the AMX, AVX512_BF16 and portable kernels, each
        // compiled for its instructions by function attributes and chosen at run time
        // (see its header), so no host flag is needed.
        .target(name: "CBF16", dependencies: ["CHost"], path: "Sources/CBF16"),
        .target(name: "Tensor", dependencies: ["CBLAS", "CVectorMath", "CHost", "CBF16"], swiftSettings: kernelSettings),
        .target(name: "SelectiveScan", dependencies: ["Tensor"], swiftSettings: kernelSettings),
        .target(name: "Blocks", dependencies: ["Tensor", "SelectiveScan"], swiftSettings: hostCPU),
        // The BPE tokenizer: training, encoding, its files; and the digest of its identity.
        .target(name: "Tokenizer", dependencies: ["Tensor"], swiftSettings: hostCPU),
        // Decoding: one sequence's cache and sampler, the generator, the terminal chat, the
        // engine that steps many requests together, conversations and the calculator.
        .target(name: "Inference", dependencies: ["Blocks", "Tensor", "Tokenizer"], swiftSettings: hostCPU),
        // Evaluations beyond the loss: nanochat's CORE bundle (its tasks, prompts and scoring),
        // the chat benchmarks' files and scoring, and the Python and NumPy random numbers that
        // choose and order their examples.
        .target(name: "Evaluation", dependencies: ["Blocks", "Tensor", "Tokenizer", "Inference", "Corpus", .product(name: "Yams", package: "Yams")],
                swiftSettings: hostCPU),
        // Config, data, the trainer, runs and their files, ranks over MPI, the sweep, SFT.
        .target(name: "Train", dependencies: ["Blocks", "Tensor", "Tokenizer", "Inference", "Evaluation", "CMPI", "Corpus"],
                swiftSettings: hostCPU),
        // Models and tokenizers in other tools' formats: Hugging Face folders, nanochat's layout.
        .target(name: "Interop", dependencies: ["Blocks", "Tensor", "Tokenizer", "Inference"], swiftSettings: hostCPU),
        // The OpenAI-compatible API and the chat page over HTTP, on the engine; the page is
        // compiled in.
        .target(
            name: "Serve",
            dependencies: ["Inference", "Tokenizer", "Blocks", "Tensor", .product(name: "Hummingbird", package: "hummingbird"),
                           .product(name: "HummingbirdCore", package: "hummingbird"), .product(name: "NIOCore", package: "swift-nio")],
            resources: [.embedInCode("chat.html")],
            swiftSettings: hostCPU
        ),
        .executableTarget(
            name: "nanochat",
            dependencies: [
                "Train", "Blocks", "Tensor", "Corpus", "Tokenizer", "Inference", "Evaluation", "Interop", "Serve",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            // The modeling file `nanochat export` ships for hybrids, compiled in.
            resources: [.embedInCode("modeling_nanochat_hybrid.py")],
            swiftSettings: hostCPU
        ),
        .executableTarget(
            name: "bench",
            dependencies: [
                "Tensor", "SelectiveScan", "Blocks", "Train", "CBLAS", "Corpus", "Tokenizer", "Inference", "Evaluation",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: hostCPU
        ),
        // libFuzzer targets for the readers of untrusted files (scripts/fuzz.sh).
        .executableTarget(
            name: "nanochat-fuzz",
            dependencies: ["Tensor", "Blocks", "Train", "Corpus", "Tokenizer", "Interop"],
            path: "Fuzz",
            exclude: ["corpus"]
        ),
        // docs/ARCHITECTURE.md's import list against the sources (reads files, links nothing).
        .testTarget(name: "ArchitectureTests"),
        // Start-up for the test executable: the OpenBLAS core correction the executables make
        // in `main` (its one function is a constructor).
        .target(name: "TestStartUp", dependencies: ["CHost"], path: "Tests/TestStartUp"),
        .testTarget(name: "TensorTests", dependencies: ["Tensor", "CLAPACKE", "TestStartUp"], swiftSettings: hostCPU),
        .testTarget(name: "SelectiveScanTests", dependencies: ["SelectiveScan", "Tensor"], swiftSettings: hostCPU),
        .testTarget(name: "BlocksTests", dependencies: ["Blocks", "SelectiveScan", "Tensor"], exclude: ["Fixtures"], swiftSettings: hostCPU),
        .testTarget(name: "CorpusTests", dependencies: ["Corpus", "CCompression"], exclude: ["Fixtures"], swiftSettings: hostCPU),
        .testTarget(name: "TokenizerTests", dependencies: ["Tokenizer", "Tensor"], exclude: ["Fixtures"], swiftSettings: hostCPU),
        .testTarget(name: "InferenceTests", dependencies: ["Inference", "Tokenizer", "Blocks", "Tensor"], exclude: ["Fixtures"], swiftSettings: hostCPU),
        .testTarget(name: "TrainTests", dependencies: ["Train", "Tokenizer", "Inference", "Evaluation", "Blocks", "Tensor", "Corpus"], swiftSettings: hostCPU),
        .testTarget(name: "EvaluationTests", dependencies: ["Evaluation", "Tokenizer", "Blocks", "Tensor"], exclude: ["Fixtures"],
                    swiftSettings: hostCPU),
        .testTarget(name: "InteropTests", dependencies: ["Interop", "Inference", "Tokenizer", "Blocks", "Tensor"], swiftSettings: hostCPU),
        .testTarget(
            name: "ServeTests",
            dependencies: [
                "Serve", "Inference", "Tokenizer", "Blocks", "Tensor",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ],
            swiftSettings: hostCPU
        ),
    ]
)

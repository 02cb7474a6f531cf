// The benchmark executable. Each mode measures ours next to a baseline in the same run, so
// the ratio is meaningful on a shared, noisy machine: medians of repeated runs after a
// warm-up, with the spread.
//
//   bench kernels            matmul GFLOPS vs raw cblas_sgemm; SIMD kernels vs scalar loops
//   bench scan               selective scan: chunked parallel vs sequential, 1 vs N threads
//   bench model              T / M / hybrid: train, forward, prefill, decode tok/s, MFU, memory
//   bench claims             the seed's claims about Mamba, confirmed or refuted by measured ratios
//   bench tokenizer          BPE training time, encoding MB/s 1 vs N threads
//   bench distributed        train steps on 1 process × all threads vs N MPI ranks
//   bench cores              one process × N threads vs N single-thread processes, side by side
//   bench core               CORE evaluation examples/s, ours against nanochat's core_eval
import ArgumentParser
import Foundation
import Tensor

@main
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure nanochat-swift's kernels and models on this machine.",
        subcommands: [KernelsCommand.self, ScanCommand.self, ModelCommand.self, ClaimsCommand.self, TokenizerBenchCommand.self, CorpusBenchCommand.self,
                      ModelCaseCommand.self, DecodeCaseCommand.self, ChartsCommand.self, DistributedCommand.self, ServeBenchCommand.self,
                      CoresCommand.self, CoresCaseCommand.self, CoreBenchCommand.self],
        defaultSubcommand: KernelsCommand.self
    )

    /// Parses and runs the mode, once OpenBLAS runs the core this CPU deserves
    /// (`HostCPU.correctBLASCore`).
    static func main() {
        HostCPU.correctBLASCore()
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            exit(withError: error)
        }
    }
}

/// Options every mode shares.
struct CommonOptions: ParsableArguments {
    @Option(help: "Worker threads for our kernels and OpenBLAS (default: all cores).")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(help: "Timed runs per measurement (the median is reported).")
    var runs: Int = 7

    @Option(help: "Also write the results as JSON to this file.")
    var json: String?

    func validate() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1, got \(threads)") }
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1, got \(runs)") }
    }
}

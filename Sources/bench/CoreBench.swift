// `bench core`: examples per second of the CORE evaluation on a checkpoint, ours in each
// precision asked for and, with --nanochat-src, nanochat's own core_eval on the same model
// (exported with `nanochat export --format nanochat`, loaded by nanochat's load_model, PyTorch
// on the CPU with the same threads), over the same shuffled examples of the same bundle.
import ArgumentParser
import Blocks
import Evaluation
import Foundation
import Inference
import Tensor
import Tokenizer

struct CoreBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "core",
        abstract: "CORE evaluation speed: examples/s of ours (each --dtypes) against nanochat's core_eval on the same model."
    )

    @Option(help: "Checkpoint to evaluate (all-T for the nanochat side).") var checkpoint: String
    @Option(help: "The eval bundle's directory.") var bundle = "data/core_shakespeare"
    @Option(help: "Examples per task, after nanochat's shuffle.") var maxPerTask = 20
    @Option(help: "Comma-separated precisions of our products.") var dtypes = "float32,bfloat16"
    @Option(help: "A nanochat checkout: also time its core_eval (needs python3 with torch, jinja2, pyyaml, tiktoken).") var nanochatSrc: String?
    @Option(help: "The Python that runs nanochat.") var python = "python3"
    @Option(help: "Worker threads, ours and PyTorch's (default: all cores).") var threads = ProcessInfo.processInfo.activeProcessorCount

    func validate() throws {
        guard maxPerTask >= 1 else { throw ValidationError("--max-per-task must be at least 1") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        for d in dtypes.split(separator: ",") where MatmulPrecision(rawValue: String(d)) == nil {
            throw ValidationError("--dtypes: \"\(d)\" is not float32 or bfloat16")
        }
    }

    func run() throws {
        Parallel.setThreadCount(threads)
        let (model, _) = try Checkpoint.load(from: checkpoint)
        let tok = try Tokenizer.load(from: checkpoint + "/tokenizer")
        let cores = try CoreBundle(directory: bundle)
        let tasks = try cores.evaluationSets(maxPerTask: maxPerTask, limit: "--max-per-task")
        let total = tasks.reduce(0) { $0 + $1.1.count }
        print("bench core: \(checkpoint) (d\(model.config.nLayer), \(model.config.blockPattern.map(\.rawValue).joined()), vocab \(model.config.vocabSize)), "
              + "\(bundle), \(maxPerTask) examples per task (\(total) in all), \(threads) threads")
        print(machineSummary(threads: threads))
        print("\n| evaluator | examples | seconds | examples/s | ÷ nanochat |\n|---|---:|---:|---:|---:|")
        var rows: [(name: String, seconds: Double, accuracies: [Double])] = []
        for name in dtypes.split(separator: ",") {
            guard let precision = MatmulPrecision(rawValue: String(name)) else { continue }
            let (seconds, accuracies) = try Precision.with(precision) { () throws -> (Double, [Double]) in
                if precision == .bfloat16 { model.packWeightsBF16() } else { model.dropPackedWeights() }
                // Warm-up: one example of the first task.
                _ = try CoreScoring.evaluate(tasks[0].1, index: 0, task: tasks[0].0, model: model, tokenizer: tok)
                let start = DispatchTime.now().uptimeNanoseconds
                let accuracies = try tasks.map { task, examples in
                    Double(try CoreScoring.evaluate(examples, task: task, indices: Array(examples.indices), model: model, tokenizer: tok))
                        / Double(examples.count)
                }
                return (Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9, accuracies)
            }
            rows.append(("ours, \(precision == .bfloat16 ? "bf16 \(Precision.with(.bfloat16) { Precision.kernel })" : "fp32")", seconds, accuracies))
        }
        var theirs: Double? = nil
        if let nanochatSrc {
            let nanochat = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
                .deletingLastPathComponent().appendingPathComponent("nanochat").path
            let base = NSTemporaryDirectory() + "bench-core-\(getpid())"
            defer { try? FileManager.default.removeItem(atPath: base) }
            _ = try runChild(nanochat, ["export", "--format", "nanochat", "--checkpoint", checkpoint, "--out", base, "--tag", "bench"])
            _ = try runChild(python, ["tools/nanochat_files.py", "pack", base])
            let out = try runChild(python, ["tools/core_bench.py", "--nanochat-src", nanochatSrc, "--base", base, "--tag", "bench",
                                            "--bundle", bundle, "--max-per-task", "\(maxPerTask)", "--threads", "\(threads)"])
            guard let line = out.split(separator: "\n").last(where: { $0.hasPrefix("{") }),
                  let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let seconds = object["seconds"] as? Double, let results = object["results"] as? [String: Double] else {
                throw ValidationError("tools/core_bench.py printed no result:\n\(out.suffix(2000))")
            }
            theirs = seconds
            rows.append(("nanochat core_eval, PyTorch \(object["torch"] ?? "?") fp32", seconds, cores.tasks.map { results[$0.label] ?? .nan }))
        }
        for row in rows {
            let ratio = theirs.map { String(format: "%.2fx", $0 / row.seconds) } ?? "-"
            print(String(format: "| %@ | %d | %.1f | %.2f | %@ |", row.name, total, row.seconds, Double(total) / row.seconds, ratio))
        }
        print("\nAccuracy per task, the same examples on every side (an example whose choices' mean losses are within rounding "
              + "of each other, as many are on a freshly initialised model, may be decided differently):")
        print("| evaluator | " + cores.tasks.map(\.label).joined(separator: " | ") + " |")
        print("|---|" + cores.tasks.map { _ in "---:" }.joined(separator: "|") + "|")
        for row in rows { print("| \(row.name) | " + row.accuracies.map { String(format: "%.3f", $0) }.joined(separator: " | ") + " |") }
    }
}

// `nanochat core`: the CORE metric of a checkpoint on an eval bundle laid out as nanochat
// downloads it (core.yaml, eval_meta_data.csv, eval_data/), scored as nanochat's core_eval
// scores it. Under mpirun each rank takes every N-th example of each task.
import ArgumentParser
import Blocks
import Evaluation
import Foundation
import Inference
import Tensor
import Tokenizer
import Train

struct CoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "core",
        abstract: "The CORE metric: accuracy on an eval bundle's in-context tasks, centred on their random baselines.",
        discussion: """
        The bundle is the directory nanochat's base_eval unpacks (eval_bundle/: core.yaml, \
        eval_meta_data.csv, eval_data/), or any directory laid out the same way, such as \
        data/core_shakespeare. Each task's examples are shuffled as nanochat shuffles them \
        (so --max-per-task N takes the same N), few-shot examples are drawn as it draws them, \
        and an item is right when the gold choice has the lowest mean loss (multiple choice, \
        schema) or every continuation token is the greedy one (language modelling). A task's \
        centred accuracy is (accuracy - baseline) / (1 - baseline); CORE is their mean.
        """
    )

    @Option(help: "Checkpoint directory.") var checkpoint: String
    @Option(help: "Checkpoint step (default: the latest).") var step: Int?
    @Option(help: "The eval bundle's directory (core.yaml, eval_meta_data.csv, eval_data/).") var bundle: String
    @Option(help: "Tasks to run, comma-separated labels (default: every task of core.yaml).") var tasks: String?
    @Option(help: "Examples per task, after nanochat's shuffle (default: all).") var maxPerTask: Int?
    @Option(help: "Tokenizer directory (default: the checkpoint's tokenizer/).") var tokenizer: String?
    @Flag(help: "Print one JSON object (per-task accuracy and centred accuracy, and CORE) instead of the table.") var json = false
    @OptionGroup var runOptions: RunOptions
    @OptionGroup var precision: PrecisionOptions

    func validate() throws {
        if let maxPerTask, maxPerTask < 1 { throw ValidationError("--max-per-task must be at least 1, got \(maxPerTask)") }
    }

    func run() throws {
        try runOnRanks(evaluate(world:))
    }

    func evaluate(world: World?) throws {
        let rank = world?.rank ?? 0, ranks = world?.size ?? 1
        runOptions.apply()
        let bundle = try CoreBundle(directory: bundle)
        var chosen = bundle.tasks
        if let tasks {
            let labels = tasks.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            let known = Set(bundle.tasks.map(\.label))
            if let unknown = labels.first(where: { !known.contains($0) }) {
                throw ValidationError("--tasks: \"\(unknown)\" is not a task of \(bundle.configPath) (it has: \(bundle.tasks.map(\.label).joined(separator: ", ")))")
            }
            guard !labels.isEmpty else { throw ValidationError("--tasks names no task") }
            chosen = bundle.tasks.filter { labels.contains($0.label) }
        }
        // Every task file is read before any scoring, so a bad line stops the run at once.
        let sets = try bundle.evaluationSets(chosen, maxPerTask: maxPerTask, limit: "--max-per-task")
        let (model, loadedStep) = try Checkpoint.load(from: checkpoint, step: step)
        precision.apply(to: model, inference: true)
        let tok = try CheckpointTokenizer.forText(model: model, checkpoint: checkpoint, step: loadedStep, given: tokenizer, offersFlag: true)
        let root = rank == 0
        func say(_ line: String) { if root { FileHandle.standardError.write(Data((line + "\n").utf8)) } }
        if ranks > 1 { say("core: \(ranks) ranks, each scoring one example in \(ranks)") }
        if root && !json {
            print("| task | type | shots | examples | accuracy | baseline | centred | seconds |\n|---|---|---:|---:|---:|---:|---:|---:|")
        }
        let results = try Evaluator.core(sets, model: model, tokenizer: tok, world: world) { r, seconds in
            guard root && !json else { return }
            let task = r.task
            print(String(format: "| %@ | %@ | %d | %d | %.4f | %.1f%% | %.4f | %.1f |", task.label, task.type.rawValue, task.fewShot,
                         r.examples, r.accuracy, task.randomBaseline, r.centered, seconds))
            fflush(nil)
        }
        let core = CoreScoring.core(results)
        guard root else { return }
        if json {
            var object: [String: Any] = ["core_metric": core, "checkpoint": checkpoint, "step": loadedStep, "bundle": bundle.directory]
            object["results"] = Dictionary(uniqueKeysWithValues: results.map { ($0.task.label, $0.accuracy) })
            object["centered_results"] = Dictionary(uniqueKeysWithValues: results.map { ($0.task.label, $0.centered) })
            object["examples"] = Dictionary(uniqueKeysWithValues: results.map { ($0.task.label, $0.examples) })
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(String(format: "\nCORE %.4f (the mean of %d centred accuracies)", core, results.count))
        }
    }
}

// `nanochat chat-eval`: a checkpoint's accuracy on the synthetic chat tasks, or on the
// public benchmarks nanochat's chat_eval runs (ARC, MMLU, GSM8K, HumanEval) from their files.
import ArgumentParser
import Blocks
import Corpus
import Evaluation
import Foundation
import Tensor
import Tokenizer
import Train
import Inference

struct ChatEvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat-eval",
        abstract: "Accuracy on the synthetic chat tasks, or on ARC, MMLU, GSM8K and HumanEval from their files.",
        discussion: """
        Without --benchmark: held-out questions of the synthetic tasks SFT trains on, answered \
        greedily with the calculator. With --benchmark NAME=FILE (repeatable): nanochat's chat \
        evaluation of that benchmark's test file (ARC-Easy, ARC-Challenge, MMLU: JSONL; GSM8K, \
        HumanEval: JSONL or parquet), its problems in the order nanochat evaluates them (the \
        Hugging Face shuffle with seed 42, so --max-problems N takes the same N). ARC and MMLU \
        are scored by the logits of the answer letters; GSM8K and HumanEval by a greedy reply \
        (GSM8K: the number after "#### "; HumanEval: the program passes its tests, run in a \
        limited child Python process).
        """
    )

    @Option(help: "Checkpoint directory.") var checkpoint: String
    @Option(help: "Checkpoint step (default: the latest).") var step: Int?
    @Option(help: "Tasks, comma-separated.") var tasks = "spelling,arithmetic,identity"
    @Option(help: "Questions per task.") var questions = 100
    @Option(help: "Longest reply, in tokens (default: 64 for the synthetic tasks, 512 for the benchmarks, as nanochat).") var maxTokens: Int?
    @Option(name: .customLong("benchmark"), help: "NAME=FILE: a benchmark's test file (ARC-Easy, ARC-Challenge, MMLU, GSM8K, HumanEval); repeatable.")
    var benchmarks: [String] = []
    @Option(help: "Benchmark problems to evaluate, after nanochat's shuffle (default: all).") var maxProblems: Int?
    @Option(help: "Benchmark problems evaluated together (categorical: one forward pass; generative: replies decoded in one batch).") var batchSize = 8
    @Option(help: "Tokenizer directory (default: the checkpoint's tokenizer/).") var tokenizer: String?
    @Flag(help: "Benchmarks: print one JSON object (each benchmark's accuracy and every problem's answer) instead of the table.") var json = false
    @OptionGroup var runOptions: RunOptions
    @OptionGroup var precision: PrecisionOptions

    func validate() throws {
        _ = try parseTasks(tasks)
        guard (1...100_000).contains(questions) else { throw ValidationError("--questions must be in 1...100000, got \(questions)") }
        if let maxTokens, !(1...100_000).contains(maxTokens) { throw ValidationError("--max-tokens must be in 1...100000, got \(maxTokens)") }
        if let maxProblems, maxProblems < 1 { throw ValidationError("--max-problems must be at least 1, got \(maxProblems)") }
        guard (1...1024).contains(batchSize) else { throw ValidationError("--batch-size must be in 1...1024, got \(batchSize)") }
        _ = try parseBenchmarks()
    }

    /// The --benchmark NAME=FILE pairs.
    func parseBenchmarks() throws -> [(benchmark: ChatBenchmark, path: String)] {
        try benchmarks.map { pair in
            guard let eq = pair.firstIndex(of: "="), case let name = String(pair[..<eq]), !name.isEmpty,
                  case let path = String(pair[pair.index(after: eq)...]), !path.isEmpty else {
                throw ValidationError("--benchmark takes NAME=FILE, got \"\(pair)\"")
            }
            guard let benchmark = ChatBenchmark.named(name) else {
                throw ValidationError("--benchmark: unknown benchmark \"\(name)\" (known: \(ChatBenchmark.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            return (benchmark, path)
        }
    }

    func run() throws {
        try runOnRanks(evaluate(world:))
    }

    func evaluate(world: World?) throws {
        runOptions.apply()
        let chosen = try parseBenchmarks()
        if world != nil && chosen.isEmpty {
            throw ValidationError("under mpirun chat-eval splits --benchmark files over the ranks; the synthetic tasks run in one process")
        }
        // Every benchmark file is read, and HumanEval's sandbox found, before the model loads.
        let sets = try chosen.map { b, path in
            (benchmark: b, path: path, problems: try ChatTaskFile.evaluationSet(b, path: path, maxProblems: maxProblems))
        }
        let sandbox = try chosen.contains { $0.benchmark == .humanEval } ? PythonSandbox.find() : nil
        let (model, loadedStep) = try Checkpoint.load(from: checkpoint, step: step)
        precision.apply(to: model, inference: true)
        let tok = try CheckpointTokenizer.forText(model: model, checkpoint: checkpoint, step: loadedStep, given: tokenizer, offersFlag: true)
        if !sets.isEmpty { return try evaluate(sets, model: model, tokenizer: tok, sandbox: sandbox, step: loadedStep, world: world) }
        let maxTokens = maxTokens ?? 64
        print("| task | correct | of | accuracy |\n|---|---:|---:|---:|")
        var results: [ChatAccuracy] = []
        for task in try parseTasks(tasks) {
            let r = ChatEvaluation.accuracy(model: model, tokenizer: tok, task: task, count: questions, maxTokens: maxTokens)
            results.append(r)
            print(String(format: "| %@ | %d | %d | %.1f%% |", task.rawValue, r.correct, r.total, 100 * r.rate))
            fflush(nil)
        }
        for r in results {
            for e in r.examples { print("\n[\(r.task.rawValue)] \(e.question)\n  reply: \(e.reply)\n  expected: \(e.expected)") }
        }
    }

    /// The benchmarks' table (or JSON) and their mean centred accuracy.
    func evaluate(_ sets: [(benchmark: ChatBenchmark, path: String, problems: [ChatProblem])], model: GPT, tokenizer tok: Tokenizer,
                  sandbox: PythonSandbox?, step loadedStep: Int, world: World?) throws {
        let root = (world?.rank ?? 0) == 0, ranks = world?.size ?? 1
        if root && ranks > 1 { FileHandle.standardError.write(Data("chat-eval: \(ranks) ranks, each scoring one batch in \(ranks)\n".utf8)) }
        if root && !json { print("| benchmark | correct | of | accuracy | baseline | centred | seconds |\n|---|---:|---:|---:|---:|---:|---:|") }
        if let sandbox, root && !json {
            FileHandle.standardError.write(Data("HumanEval programs run in \(sandbox.python) (\(Int(sandbox.timeout)) s each\(sandbox.unshare == nil ? "; no network namespace available, so not cut off from the network" : ", no network"))\n".utf8))
        }
        var results: [ChatBenchmarkResult] = []
        for set in sets {
            let started = Date()
            let r = try Evaluator.chatBenchmark(set.benchmark, problems: set.problems, model: model, tokenizer: tok, batchSize: batchSize,
                                                maxTokens: maxTokens ?? 512, sandbox: sandbox, world: world)
            results.append(r)
            if root && !json {
                print(String(format: "| %@ | %d | %d | %.4f | %.2f | %.4f | %.1f |", r.benchmark.rawValue, r.correct, r.total, r.accuracy,
                             r.benchmark.baseline, r.centered, Date().timeIntervalSince(started)))
                fflush(nil)
            }
        }
        let mean = results.map(\.centered).reduce(0, +) / Double(max(1, results.count))
        guard root else { return }
        if json {
            // Every problem's outcome; its answer where this process scored it (all of them in
            // one process, rank 0's batches under MPI).
            let list: [[String: Any]] = zip(sets, results).map { set, r in
                let scored = Dictionary(uniqueKeysWithValues: r.problems.map { ($0.index, $0) })
                return ["benchmark": r.benchmark.rawValue, "file": set.path, "correct": r.correct, "total": r.total, "accuracy": r.accuracy,
                        "centered": r.centered,
                        "problems": r.outcomes.enumerated().map { i, correct -> [String: Any] in
                            var o: [String: Any] = ["index": i, "source": set.problems[i].source, "correct": correct]
                            if let p = scored[i] {
                                o["answer"] = p.answer
                                if let f = p.failure { o["failure"] = f }
                            }
                            return o
                        }]
            }
            let object: [String: Any] = ["checkpoint": checkpoint, "step": loadedStep, "benchmarks": list, "mean_centered": mean]
            print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
        } else {
            print(String(format: "\nmean centred accuracy %.4f over %d benchmark%@ (nanochat's ChatCORE is this mean over its six tasks, SpellingBee among them)",
                         mean, results.count, results.count == 1 ? "" : "s"))
        }
    }
}

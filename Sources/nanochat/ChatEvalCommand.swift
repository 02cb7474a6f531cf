// `nanochat chat-eval`: a checkpoint's accuracy on the chat tasks.
import ArgumentParser
import Blocks
import Corpus
import Foundation
import Tensor
import Train
import Inference

struct ChatEvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat-eval",
        abstract: "Accuracy on held-out questions of the synthetic chat tasks (greedy replies, with the calculator)."
    )

    @Option(help: "Checkpoint directory.") var checkpoint: String
    @Option(help: "Checkpoint step (default: the latest).") var step: Int?
    @Option(help: "Tasks, comma-separated.") var tasks = "spelling,arithmetic,identity"
    @Option(help: "Questions per task.") var questions = 100
    @Option(help: "Longest reply, in tokens.") var maxTokens = 64
    @OptionGroup var runOptions: RunOptions
    @OptionGroup var precision: PrecisionOptions

    func validate() throws {
        _ = try parseTasks(tasks)
        guard (1...100_000).contains(questions) else { throw ValidationError("--questions must be in 1...100000, got \(questions)") }
        guard (1...100_000).contains(maxTokens) else { throw ValidationError("--max-tokens must be in 1...100000, got \(maxTokens)") }
    }

    func run() throws {
        runOptions.apply()
        let (model, loadedStep) = try Checkpoint.load(from: checkpoint, step: step)
        precision.apply(to: model, inference: true)
        let tok = try CheckpointTokenizer.forText(model: model, checkpoint: checkpoint, step: loadedStep, given: nil, offersFlag: false)
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
}

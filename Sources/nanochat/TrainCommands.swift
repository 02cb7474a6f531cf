// `nanochat prepare` and `nanochat train`.
import ArgumentParser
import Blocks
import Foundation
import Tensor
import Train

extension DocumentSplit: ExpressibleByArgument {}

struct PrepareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prepare",
        abstract: "Tokenize text files into train.bin and val.bin token shards (each document starts with <|bos|>)."
    )

    @Option(parsing: .upToNextOption, help: "UTF-8 text files.") var input: [String]
    @Option(help: "Tokenizer directory (from `nanochat tokenizer train`).") var tokenizer: String
    @Option(help: "Directory to write train.bin, val.bin and data.json into.") var out: String
    @Option(help: "How files become documents: \(DocumentSplit.allCases.map(\.rawValue).joined(separator: ", ")).")
    var documents: DocumentSplit = .paragraphs
    @Option(help: "Fraction of the bytes (the last documents) held out as val.bin.") var valFraction: Double = 0.1
    @OptionGroup var runOptions: RunOptions

    func validate() throws {
        guard !input.isEmpty else { throw ValidationError("--input needs at least one file") }
        guard valFraction > 0 && valFraction < 1 else { throw ValidationError("--val-fraction must be in (0, 1), got \(valFraction)") }
    }

    func run() throws {
        runOptions.apply()
        let tok = try loadTokenizer(tokenizer)
        let texts = try input.map(readText)
        let start = Date()
        let data: PreparedData
        do {
            data = try DataPreparation.prepare(texts: texts, split: documents, tokenizer: tok, tokenizerDir: tokenizer,
                                               valFraction: valFraction, to: out)
        } catch let e as TokenizerError { throw UserError(e.message) }
        print(String(format: "wrote %@/train.bin (%d tokens, %d documents) and val.bin (%d tokens, %d documents) in %.2f s",
                     out, data.trainTokens, data.trainDocuments, data.valTokens, data.valDocuments, Date().timeIntervalSince(start)))
    }
}

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a model from a config file and --key=value overrides, as nanochat's base_train.",
        discussion: """
        Reads data_dir/train.bin and val.bin (from `nanochat prepare`) and the tokenizer in
        tokenizer_dir (default data_dir/tokenizer); writes checkpoints, metrics.jsonl and
        loss.svg to output_dir (default runs/<model_tag>, the tag defaulting to the config's
        name). --resume continues from the latest checkpoint there, --resume-step from a given
        one; the continued run equals the uninterrupted one bit for bit.

        Keys, set in the config file or as --key=value (name: type = default, then meaning):
        """ + "\n" + TrainingKeys.helpText
    )

    @Argument(help: "A config file of Python assignments, e.g. configs/shakespeare_d4.py.") var config: String
    @Flag(help: "Continue from the latest checkpoint in output_dir.") var resume = false
    @Option(help: "Continue from the checkpoint of this step.") var resumeStep: Int?
    @Flag(help: "Start afresh even if output_dir holds checkpoints; they are deleted when the new run saves its first.")
    var overwrite = false
    @Argument(parsing: .allUnrecognized, help: "Overrides, --key=value (e.g. --num_iterations=100 --depth=6).")
    var overrides: [String] = []

    func run() throws {
        let file = try loadConfig(config, overrides: overrides)
        let tokenizer = try loadTokenizer(TrainingKeys.tokenizerDir(file))
        try reportingTrainingErrors {
            let settings = try TrainSettings.resolve(file, path: config, vocabSize: tokenizer.vocabSize)
            let point: ResumePoint? = resumeStep.map { .step($0) } ?? (resume ? .latest : nil)
            let lock = try RunLock(dir: settings.outputDir, purpose: "nanochat train")
            defer { withExtendedLifetime(lock) {} }
            let existing = Checkpoint.steps(in: settings.outputDir)
            if point == nil && !existing.isEmpty && !overwrite {
                throw UserError("\(settings.outputDir) already holds checkpoints (steps \(existing.map(String.init).joined(separator: ", "))); "
                                + "--resume continues the latest, --overwrite replaces them with a fresh run's (at its first save), or set --output_dir=DIR")
            }
            let run = try TrainingRun(settings: settings, tokenizer: tokenizer, resume: point,
                                      replacing: point == nil ? existing : []) {
                print($0)
                fflush(nil)
            }
            let summary = try run.run()
            if let first = summary.evaluations.first, let last = summary.evaluations.last, summary.evaluations.count > 1 {
                print(String(format: "done: val bpb %.4f at step %d → %.4f at step %d; median %@ tok/s; checkpoints in %@",
                             first.bpb, first.step, last.bpb, last.step, TrainingRun.grouped(Int(summary.medianTokensPerSecond)),
                             settings.outputDir))
            }
        }
    }
}

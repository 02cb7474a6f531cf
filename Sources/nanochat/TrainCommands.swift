// `nanochat prepare` and `nanochat train`.
import ArgumentParser
import Blocks
import Foundation
import Tensor
import Train
import Corpus
import Tokenizer

extension DocumentSplit: ExpressibleByArgument {}

/// The inputs of `prepare` and `tokenizer train`: corpus files and how they become documents.
struct CorpusOptions: ParsableArguments {
    @Option(parsing: .upToNextOption, help: ArgumentHelp(
        "Corpus files, directories or globs: .parquet, .jsonl/.ndjson (optionally .zst), anything else UTF-8 text.",
        discussion: "A directory's files are read in name order; quote globs so the shell leaves them to nanochat."))
    var input: [String]
    @Option(help: "The parquet column or JSON field holding each document's text.") var field = "text"
    @Option(help: "How text files become documents: \(DocumentSplit.allCases.map(\.rawValue).joined(separator: ", ")).")
    var documents: DocumentSplit = .paragraphs
    @Flag(help: "Skip rows that are null, not UTF-8, not JSON or lack the field (counted and reported) instead of stopping.")
    var skipBad = false
    @Option(help: "Documents longer than this many bytes are cut into pieces (at a line break or space near the bound).")
    var maxDocumentBytes = 1 << 20

    func validate() throws {
        guard !input.isEmpty else { throw ValidationError("--input needs at least one file, directory or glob") }
        guard (16...(1 << 30)).contains(maxDocumentBytes) else {
            throw ValidationError("--max-document-bytes must be in 16...\(1 << 30), got \(maxDocumentBytes)")
        }
        guard !field.isEmpty else { throw ValidationError("--field must not be empty") }
    }

    var options: DocumentOptions {
        DocumentOptions(field: field, split: documents, skipBad: skipBad, maxDocumentBytes: maxDocumentBytes)
    }

    /// The input files, expanded; errors name the input.
    func files() throws -> [CorpusFile] {
        try CorpusFile.expand(input)
    }
}

/// "12.3 MB", "1.20 GB".
func byteCount(_ n: Int) -> String {
    Double(n) >= 1e9 ? String(format: "%.2f GB", Double(n) / 1e9) : String(format: "%.1f MB", Double(n) / 1e6)
}

struct PrepareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prepare",
        abstract: "Tokenize a corpus into train and val token shards (each document starts with <|bos|>).",
        discussion: """
        Streams the documents (memory stays bounded whatever the corpus size), encodes them on
        all threads and writes OUT/train_000000.bin, ... and val_000000.bin, ... in llm.c's
        format, with OUT/data.json listing them. val is the last documents, about
        --val-fraction of the text. An interrupted run leaves no data.json, so nothing loads
        the directory; running prepare again starts it afresh.
        """
    )

    @OptionGroup var corpus: CorpusOptions
    @Option(help: "Tokenizer directory (from `nanochat tokenizer train`).") var tokenizer: String
    @Option(help: "Directory to write the shards and data.json into.") var out: String
    @Option(help: "Fraction of the text (the last documents) held out as val.") var valFraction: Double = 0.1
    @Option(help: "Tokens per shard file.") var shardTokens = 100_000_000
    @Option(help: "Stop after this many tokens (train and val together): a prefix of the corpus.") var maxTokens: Int?
    @OptionGroup var runOptions: RunOptions

    func validate() throws {
        guard valFraction > 0 && valFraction < 1 else { throw ValidationError("--val-fraction must be in (0, 1), got \(valFraction)") }
        guard (1...Int(Int32.max)).contains(shardTokens) else {
            throw ValidationError("--shard-tokens must be in 1...\(Int32.max) (a shard's header counts its tokens in an int32), got \(shardTokens)")
        }
        if let maxTokens, maxTokens < 2 { throw ValidationError("--max-tokens must be at least 2 (one for train, one for val), got \(maxTokens)") }
    }

    func run() throws {
        runOptions.apply()
        let tok = try loadTokenizer(tokenizer)
        let files = try corpus.files()
        var options = PrepareOptions()
        options.valFraction = valFraction
        options.shardTokens = shardTokens
        options.maxTokens = maxTokens
        options.documents = corpus.options
        let data = try DataPreparation.prepare(files: files, tokenizer: tok, tokenizerDir: tokenizer, options: options, to: out) { p in
            let rate = Double(p.bytesRead) / max(p.seconds, 1e-9)
            let eta = rate > 0 ? Double(max(0, p.totalBytes - p.bytesRead)) / rate : 0
            let line = String(format: "prepare: %@ of %@ (%.1f%%), %d documents, %d tokens, %.1f MB/s, ETA %.0f s",
                              byteCount(p.bytesRead), byteCount(p.totalBytes),
                              100 * Double(p.bytesRead) / Double(max(p.totalBytes, 1)), p.documents, p.tokens, rate / 1e6, eta)
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
        for reason in data.skipReasons { FileHandle.standardError.write(Data("skipped: \(reason)\n".utf8)) }
        print("wrote \(out): train \(data.trainTokens) tokens (\(data.trainDocuments) documents, \(data.trainShards) shard(s)), "
              + "val \(data.valTokens) tokens (\(data.valFromTail ? "the last tokens of the stream" : "\(data.valDocuments) documents"), "
              + "\(data.valShards) shard(s))" + (data.skipped > 0 ? "; skipped \(data.skipped) bad row(s)" : ""))
    }
}

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a model from a config file and --key=value overrides, as nanochat's base_train.",
        discussion: """
        Reads the token shards in data_dir (from `nanochat prepare`) and the tokenizer in
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
        guard let world = World.current else { return try train(world: nil) }
        // Under MPI an error on any rank ends every rank, with that rank's message.
        do {
            try train(world: world)
        } catch {
            world.abort("\(error)")
        }
        world.finalize()
    }

    func train(world: World?) throws {
        let file = try loadConfig(config, overrides: overrides)
        let tokenizer = try loadTokenizer(TrainingKeys.tokenizerDir(file))
        let settings = try TrainSettings.resolve(file, path: config, vocabSize: tokenizer.vocabSize, worldSize: world?.size ?? 1)
        if let world { try checkRanksAgree(world, settings, tokenizer) }
        let point: ResumePoint? = resumeStep.map { .step($0) } ?? (resume ? .latest : nil)
        let printing = world?.isRoot ?? true
        let run = try TrainingRun(settings: settings, tokenizer: tokenizer, resume: point, overwrite: overwrite, world: world) { line in
            guard printing else { return }
            print(line)
            fflush(nil)
        }
        let summary = try run.run()
        if world?.isRoot ?? true, let first = summary.evaluations.first, let last = summary.evaluations.last, summary.evaluations.count > 1 {
            print(String(format: "done: val bpb %.4f at step %d → %.4f at step %d; median %@ tok/s; checkpoints in %@",
                         first.bpb, first.step, last.bpb, last.step, TrainingRun.grouped(Int(summary.medianTokensPerSecond)),
                         settings.outputDir))
        }
    }
}

/// Every rank must run the same training: the same resolved settings (but threads and
/// paths) and model, the same tokenizer and the same executable. Rank 0's digests are compared with each rank's; any
/// difference stops the job naming the ranks.
func checkRanksAgree(_ world: World, _ settings: TrainSettings, _ tokenizer: Tokenizer) throws {
    var config = Digest()
    // Threads and paths may differ per rank (hosts mount data in different places).
    let local: Set<String> = ["threads", "data_dir", "tokenizer_dir", "output_dir"]
    let keys = settings.userConfig.keys.sorted().filter { !local.contains($0) }
    for key in keys { config.add(key); config.add(settings.userConfig[key]?.description ?? "") }
    for spec in settings.model.parameterSpecs { config.add(spec.name); config.add("\(spec.shape)") }
    config.add(tokenizer.identity)
    let all = world.gather((config.value, Digest.executable() ?? 0))
    let configs = all.indices.filter { all[$0].0 != all[0].0 }, binaries = all.indices.filter { all[$0].1 != all[0].1 }
    guard configs.isEmpty && binaries.isEmpty else {
        var what: [String] = []
        if !configs.isEmpty { what.append("rank(s) \(configs.map(String.init).joined(separator: ", ")) resolved other settings, model or tokenizer than rank 0") }
        if !binaries.isEmpty { what.append("rank(s) \(binaries.map(String.init).joined(separator: ", ")) run another nanochat executable than rank 0") }
        throw UserError("the ranks do not agree: \(what.joined(separator: "; ")); start every rank with the same binary, config and overrides")
    }
}

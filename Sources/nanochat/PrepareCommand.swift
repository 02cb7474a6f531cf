// `nanochat prepare`: documents → token shards and their index, and the corpus options
// `tokenizer train` shares.
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
    @Flag(help: "Replace the dataset --out already holds (kept until the new one is whole).") var overwrite = false
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
        let tok = try Tokenizer.load(from: tokenizer)
        let files = try corpus.files()
        var options = PrepareOptions()
        options.valFraction = valFraction
        options.shardTokens = shardTokens
        options.maxTokens = maxTokens
        options.documents = corpus.options
        let data = try DataPreparation.prepare(files: files, tokenizer: tok, tokenizerDir: tokenizer, options: options, to: out,
                                                  overwrite: overwrite) { p in
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

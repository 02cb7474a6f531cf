// `nanochat tokenizer train | encode | decode`.
import ArgumentParser
import Foundation
import Tensor
import Train
import Corpus
import Tokenizer

struct TokenizerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenizer",
        abstract: "Train a byte-level BPE tokenizer, or encode and decode with one.",
        subcommands: [TokenizerTrain.self, TokenizerEncode.self, TokenizerDecode.self]
    )
}

/// Reads a text file as UTF-8; the error names the file and the first invalid byte.
func readText(_ path: String) throws -> String {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw UserError("\(path): cannot read (missing or not a file)")
    }
    return try Tokenizer.validatedString([UInt8](data), source: path)
}

struct TokenizerTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train BPE merges on a corpus; writes tokenizer.tiktoken and tokenizer_info.json.",
        discussion: """
        Streams the documents as `prepare` reads them, each cut to --doc-cap characters, until
        --max-chars characters (nanochat's defaults: the first 2 billion, 10,000 per document),
        counting the pieces of the split pattern on all threads; memory holds the distinct
        pieces and their counts, not the text.
        """
    )

    @OptionGroup var corpus: CorpusOptions
    @Option(help: "Vocabulary size including the 256 bytes and the 9 special tokens.") var vocabSize: Int = 4096
    @Option(help: "Directory to write the tokenizer into.") var out: String
    @Flag(help: "Replace the tokenizer --out already holds (the shards prepared with it then belong to none).") var overwrite = false
    @Option(help: "Train on the first this many characters of the corpus.") var maxChars: Double = 2e9
    @Option(help: "Use at most this many characters of each document.") var docCap: Int = 10_000
    @OptionGroup var runOptions: RunOptions

    func validate() throws {
        guard (265...65536).contains(vocabSize) else {
            throw ValidationError("--vocab-size must be in 265...65536 (256 bytes + 9 special tokens, uint16 shards), got \(vocabSize)")
        }
        guard maxChars >= 1 && maxChars <= 1e15 else { throw ValidationError("--max-chars must be in 1...1e15, got \(maxChars)") }
        guard docCap >= 1 else { throw ValidationError("--doc-cap must be at least 1, got \(docCap)") }
    }

    func run() throws {
        runOptions.apply()
        if !overwrite {
            try OutputDirectory.requireEmpty(out, of: { [Tokenizer.ranksFile, Tokenizer.infoFile].contains($0) },
                                             what: "a tokenizer", flag: "--overwrite")
        }
        let stream = DocumentStream(files: try corpus.files(), options: corpus.options)
        let start = Date()
        var lastReport = Date.distantPast
        let counter = try TokenizerCorpus.count(stream, maxCharacters: Int(maxChars), docCap: docCap) { counter in
            guard Date().timeIntervalSince(lastReport) >= 2 else { return }
            lastReport = Date()
            FileHandle.standardError.write(Data(String(
                format: "tokenizer: %@ of %@ read, %d documents, %.1fM characters, %d distinct pieces, %.1f s\n",
                byteCount(stream.bytesRead), byteCount(stream.totalBytes), stream.documents,
                Double(counter.characters) / 1e6, counter.pieces.count, lastReport.timeIntervalSince(start)).utf8))
        }
        guard counter.characters > 0 else { throw UserError("the input has no text to train on") }
        let countSeconds = Date().timeIntervalSince(start)
        let tokenizer = try Tokenizer.train(pieces: counter.pieceBytes, counts: counter.counts, vocabSize: vocabSize)
        let seconds = Date().timeIntervalSince(start)
        try tokenizer.save(to: out)
        print(String(format: "trained %d merges on %.2fM characters (%d documents) in %.2f s (%.2f s counting); wrote %@/%@ and %@",
                     vocabSize - 256 - specialTokens.count, Double(counter.characters) / 1e6, stream.documents, seconds, countSeconds,
                     out, Tokenizer.ranksFile, Tokenizer.infoFile))
        if stream.skipped > 0 { print("skipped \(stream.skipped) bad row(s)") }
    }
}

struct TokenizerEncode: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encode",
        abstract: "Print the token ids of a text (from --text, a file, or standard input)."
    )

    @Option(help: "Tokenizer directory.") var tokenizer: String
    @Option(help: "Text to encode (default: the file argument, or standard input).") var text: String?
    @Argument(help: "A UTF-8 text file to encode.") var file: String?
    @Flag(help: "Start with <|bos|>.") var bos = false
    @OptionGroup var runOptions: RunOptions

    func run() throws {
        runOptions.apply()
        let tok = try Tokenizer.load(from: tokenizer)
        let input: String
        if let text { input = text } else if let file { input = try readText(file) } else {
            let data = FileHandle.standardInput.readDataToEndOfFile()
            input = try Tokenizer.validatedString([UInt8](data), source: "standard input")
        }
        let ids = (bos ? [tok.bosID] : []) + tok.encode(input)
        print(ids.map(String.init).joined(separator: " "))
    }
}

struct TokenizerDecode: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decode",
        abstract: "Print the text of token ids (from --ids or standard input; spaces or commas between)."
    )

    @Option(help: "Tokenizer directory.") var tokenizer: String
    @Option(help: "Token ids, e.g. \"72 101 108\".") var ids: String?

    func run() throws {
        let tok = try Tokenizer.load(from: tokenizer)
        let raw = ids ?? String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
        let values = try parseIDs(raw, vocabSize: tok.vocabSize, flag: ids == nil ? "standard input" : "--ids")
        let bytes = try tok.decodeBytes(values)
        FileHandle.standardOutput.write(Data(bytes))
        if bytes.last != UInt8(ascii: "\n") { print() }
    }
}

/// Token ids separated by spaces or commas, each checked against the vocabulary.
func parseIDs(_ raw: String, vocabSize: Int, flag: String) throws -> [Int32] {
    let parts = raw.split(whereSeparator: { $0 == "," || $0.isWhitespace })
    return try parts.map { s -> Int32 in
        guard let v = Int32(s), v >= 0, Int(v) < vocabSize else {
            throw UserError("\(flag): \"\(s)\" is not a token id in 0..<\(vocabSize)")
        }
        return v
    }
}

// `nanochat tokenizer train | encode | decode`.
import ArgumentParser
import Foundation
import Tensor
import Train

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
    do { return try Tokenizer.validatedString([UInt8](data), source: path) } catch let e as TokenizerError { throw UserError(e.message) }
}

/// Loads a tokenizer directory, turning its errors into user errors.
func loadTokenizer(_ dir: String) throws -> Tokenizer {
    do { return try Tokenizer.load(from: dir) } catch let e as TokenizerError { throw UserError(e.message) }
}

struct TokenizerTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train BPE merges on text files; writes tokenizer.tiktoken and tokenizer.json."
    )

    @Option(parsing: .upToNextOption, help: "UTF-8 text files to train on.") var input: [String]
    @Option(help: "Vocabulary size including the 256 bytes and the 9 special tokens.") var vocabSize: Int = 4096
    @Option(help: "Directory to write the tokenizer into.") var out: String

    func validate() throws {
        guard !input.isEmpty else { throw ValidationError("--input needs at least one file") }
        guard (265...65536).contains(vocabSize) else {
            throw ValidationError("--vocab-size must be in 265...65536 (256 bytes + 9 special tokens, uint16 shards), got \(vocabSize)")
        }
    }

    func run() throws {
        let texts = try input.map(readText)
        let start = Date()
        let tokenizer: Tokenizer
        do { tokenizer = try Tokenizer.train(texts, vocabSize: vocabSize) } catch let e as TokenizerError { throw UserError(e.message) }
        let seconds = Date().timeIntervalSince(start)
        try tokenizer.save(to: out)
        let bytes = texts.reduce(0) { $0 + $1.utf8.count }
        print(String(format: "trained %d merges on %.2f MB in %.2f s; wrote %@/%@ and %@",
                     vocabSize - 256 - specialTokens.count, Double(bytes) / 1e6, seconds, out, Tokenizer.ranksFile, Tokenizer.infoFile))
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
        let tok = try loadTokenizer(tokenizer)
        let input: String
        if let text { input = text } else if let file { input = try readText(file) } else {
            let data = FileHandle.standardInput.readDataToEndOfFile()
            do { input = try Tokenizer.validatedString([UInt8](data), source: "standard input") } catch let e as TokenizerError { throw UserError(e.message) }
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
        let tok = try loadTokenizer(tokenizer)
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

// `nanochat prepare`: text files → documents → token ids, each document starting with
// <|bos|> (SPEC §3.1), written as train.bin and val.bin in llm.c's shard format, plus
// data.json recording the tokenizer and the counts (so training can tell a shard of another
// vocabulary apart). The validation shard is the last documents, as nanochat holds out its
// last parquet shard.
import Blocks
import Foundation
import Tensor

/// How a text file is cut into documents.
public enum DocumentSplit: String, CaseIterable, Sendable {
    /// The whole file is one document.
    case file
    /// Paragraphs separated by blank lines; each keeps one trailing newline. For corpora
    /// like tinyshakespeare, where a paragraph is one speech.
    case paragraphs
}

public struct PreparedData: Sendable {
    public let trainTokens: Int, valTokens: Int, trainDocuments: Int, valDocuments: Int
}

public enum DataPreparation {
    public static let trainFile = "train.bin", valFile = "val.bin", infoFile = "data.json"

    /// The documents of `text`.
    public static func documents(_ text: String, split: DocumentSplit) -> [String] {
        switch split {
        case .file:
            return text.isEmpty ? [] : [text]
        case .paragraphs:
            // Normalised to "\n" line ends only for finding blank lines; the text itself is kept.
            var docs: [String] = [], current: [Substring] = []
            for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
                if line.allSatisfy(\.isWhitespace) {
                    if !current.isEmpty { docs.append(current.joined(separator: "\n") + "\n"); current = [] }
                } else {
                    current.append(line)
                }
            }
            if !current.isEmpty { docs.append(current.joined(separator: "\n") + "\n") }
            return docs
        }
    }

    /// Tokenizes `texts` and writes train.bin, val.bin and data.json into `dir`. The last
    /// documents holding about `valFraction` of the bytes (at least one) form val.bin.
    public static func prepare(texts: [String], split: DocumentSplit, tokenizer: Tokenizer, tokenizerDir: String,
                               valFraction: Double, to dir: String) throws -> PreparedData {
        let docs = texts.flatMap { documents($0, split: split) }
        guard docs.count >= 2 else {
            throw TokenizerError("the input has \(docs.count) document(s); at least 2 are needed for train and val (try --documents paragraphs, or more files)")
        }
        let totalBytes = docs.reduce(0) { $0 + $1.utf8.count }
        var valStart = docs.count - 1, valBytes = docs[valStart].utf8.count
        while valStart > 1 && Double(valBytes + docs[valStart - 1].utf8.count) <= valFraction * Double(totalBytes) {
            valStart -= 1
            valBytes += docs[valStart].utf8.count
        }
        let ids = tokenizer.encode(documents: docs)
        func shard(_ range: Range<Int>) -> [UInt16] {
            var out: [UInt16] = []
            for d in range { out.append(UInt16(tokenizer.bosID)); out += ids[d].map { UInt16($0) } }
            return out
        }
        let train = shard(0..<valStart), val = shard(valStart..<docs.count)
        try AtomicFile.makeDirectories(dir)
        AtomicFile.removeStale(in: dir)
        try TokenShard.write(train, to: "\(dir)/\(trainFile)")
        try TokenShard.write(val, to: "\(dir)/\(valFile)")
        let info: [String: Any] = [
            "tokenizer_dir": tokenizerDir, "vocab_size": tokenizer.vocabSize, "tokenizer_hash": tokenizer.identity,
            "documents": split.rawValue,
            "train_tokens": train.count, "val_tokens": val.count,
            "train_documents": valStart, "val_documents": docs.count - valStart,
        ]
        try AtomicFile.write(try JSONSerialization.data(withJSONObject: info, options: [.prettyPrinted, .sortedKeys]),
                             to: "\(dir)/\(infoFile)")
        return PreparedData(trainTokens: train.count, valTokens: val.count, trainDocuments: valStart,
                            valDocuments: docs.count - valStart)
    }

    /// Checks the data.json in `dir`, when there is one, against the tokenizer in use: its
    /// vocabulary size and (written since shards record it) its identity.
    public static func checkTokenizer(ofShardsIn dir: String, vocabSize: Int, identity: String?) throws {
        let info = "\(dir)/\(infoFile)"
        guard let data = FileManager.default.contents(atPath: info) else { return }
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ShardError(path: info, "not a JSON object; run `nanochat prepare` again to rewrite it")
        }
        if let v = object["vocab_size"] as? Int, v != vocabSize {
            throw ShardError(path: info, "these shards were made with a tokenizer of vocab size \(v), but the tokenizer in use has \(vocabSize); run `nanochat prepare` again with this tokenizer")
        }
        if let identity, let made = object["tokenizer_hash"] as? String, made != identity {
            throw ShardError(path: info, "these shards were made with another tokenizer (hash \(made)) than the one in use (\(identity)), "
                             + "though both have \(vocabSize) ids; run `nanochat prepare` again with this tokenizer")
        }
    }

    /// Opens dir/train.bin and dir/val.bin, checking them against `vocabSize` (and data.json's
    /// tokenizer, when present). Errors name the file.
    public static func openShards(_ dir: String, vocabSize: Int, tokenizerIdentity: String? = nil) throws -> (train: TokenShard, val: TokenShard) {
        try checkTokenizer(ofShardsIn: dir, vocabSize: vocabSize, identity: tokenizerIdentity)
        let train = try TokenShard(path: "\(dir)/\(trainFile)"), val = try TokenShard(path: "\(dir)/\(valFile)")
        try train.validate(vocabSize: vocabSize)
        try val.validate(vocabSize: vocabSize)
        return (train, val)
    }
}

extension Tokenizer {
    /// The ids of each document, documents spread over the workers in fixed contiguous
    /// blocks (so the result does not depend on the thread count).
    public func encode(documents: [String]) -> [[Int32]] {
        var out = [[Int32]](repeating: [], count: documents.count)
        out.withUnsafeMutableBufferPointer { res in
            Parallel.forEach(documents.count) { d in res[d] = encodeSerially(documents[d]) }
        }
        return out
    }
}

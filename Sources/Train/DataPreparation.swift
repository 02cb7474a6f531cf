// `nanochat prepare`: corpus files → documents → token ids, each document starting with
// <|bos|> (SPEC §3.1), written as fixed-size shards in llm.c's format (train_000000.bin, ...,
// val_000000.bin, ...) plus data.json, the index: the tokenizer, the shard list and the token
// and document counts. Documents stream through: memory holds one batch of documents being
// encoded, one shard being filled and the documents held back for val, whatever the corpus
// size. data.json is written last, so a directory without it is an unfinished run, which no
// reader loads and which `prepare` starts again from scratch.
//
// The val split is the last documents, about `valFraction` of the text (as nanochat holds out
// its last parquet shard): documents are held back until they are more than that fraction of
// the estimated input behind the newest. When the last whole documents are more than twice
// the fraction (a corpus of a few long documents), or are every document, val is instead the
// last tokens of the stream, and train always has tokens.
import Corpus
import Foundation
import Tensor
import Tokenizer

public struct PreparedData: Sendable {
    public let trainTokens: Int, valTokens: Int, trainDocuments: Int, valDocuments: Int
    public let trainShards: Int, valShards: Int
    /// Rows skipped under --skip-bad (with the first few reasons), and whether val was cut
    /// from the stream's tail.
    public let skipped: Int, skipReasons: [String], valFromTail: Bool
}

/// Where `prepare` is, for its progress line.
public struct PrepareProgress: Sendable {
    public let bytesRead: Int, totalBytes: Int, documents: Int, tokens: Int, seconds: Double
}

public struct PrepareOptions: Sendable {
    /// About this fraction of the text (the last documents) becomes val.
    public var valFraction = 0.1
    /// Tokens per shard file (the last of each split holds the rest).
    public var shardTokens = 100_000_000
    /// Stop after this many tokens (train and val together): a prefix of the corpus.
    public var maxTokens: Int?
    public var documents = DocumentOptions()
    public init() {}
}

public enum DataPreparation {
    public static let infoFile = "data.json"
    /// The layout of data.json this build writes and reads.
    public static let indexFormat = 2
    /// The single-file layout that earlier versions wrote; still read.
    public static let trainFile = "train.bin", valFile = "val.bin"
    /// Documents encoded together (on all threads) hold about this many bytes of text.
    static let batchBytes = 16 << 20

    public static func shardName(_ split: String, _ index: Int) -> String { String(format: "%@_%06d.bin", split, index) }

    /// Streams `files` through `tokenizer` into shards in `dir`.
    ///
    /// One `prepare` at a time per directory (its lock); a directory that holds a dataset is
    /// refused unless `overwrite`, and then keeps it until the new one is whole: the shards are
    /// written in a staging folder and moved in at the end, data.json last.
    public static func prepare(files: [CorpusFile], tokenizer: Tokenizer, tokenizerDir: String, options: PrepareOptions,
                               to dir: String, overwrite: Bool = false, progress: ((PrepareProgress) -> Void)? = nil) throws -> PreparedData {
        precondition(options.valFraction > 0 && options.valFraction < 1 && options.shardTokens > 0)
        let lock = try RunLock(dir: dir, purpose: "nanochat prepare")
        defer { withExtendedLifetime(lock) {} }
        if !overwrite {
            try OutputDirectory.requireEmpty(dir, of: isDatasetFile, what: "a prepared dataset", flag: "--overwrite")
        }
        return try OutputDirectory.install(into: dir, last: infoFile) { stage in
            let prepared = try write(files: files, tokenizer: tokenizer, tokenizerDir: tokenizerDir, options: options, to: stage, progress: progress)
            try removeDataset(in: dir)
            return prepared
        }
    }

    /// Whether a file name is one of a prepared dataset's (data.json, shards, the old format's files).
    static func isDatasetFile(_ name: String) -> Bool {
        name == infoFile || name == trainFile || name == valFile
            || ((name.hasPrefix("train_") || name.hasPrefix("val_")) && name.hasSuffix(".bin"))
    }

    static func write(files: [CorpusFile], tokenizer: Tokenizer, tokenizerDir: String, options: PrepareOptions,
                      to dir: String, progress: ((PrepareProgress) -> Void)?) throws -> PreparedData {
        try AtomicFile.makeDirectories(dir)
        // Unfinished first: without data.json nothing loads the directory until this run ends.
        try removeDataset(in: dir)

        let stream = DocumentStream(files: files, options: options.documents)
        let estimate = try files.reduce(0) { $0 + (try textBytesEstimate($1, field: options.documents.field)) }
        let holdTokens = options.maxTokens.map { Int((Double($0) * options.valFraction).rounded(.up)) }
        let holdBytes = Int(Double(estimate) * options.valFraction)
        let train = ShardWriter(dir: dir, split: "train", shardTokens: options.shardTokens)
        let bos = UInt16(tokenizer.bosID)
        var held: [(tokens: [UInt16], bytes: Int)] = [], heldHead = 0, heldTokens = 0, heldBytes = 0
        var documents = 0, total = 0, textBytes = 0
        let start = Date()
        var lastReport = start
        var done = false
        // Reading (decompressing, parsing) runs a batch ahead on a thread of its own while the
        // workers encode; the batches are the same as read in turn, so are the shards.
        let reader = ReadAhead(stream, batchBytes: batchBytes)
        defer { reader.stop() }
        var bytesRead = 0
        // Releases the oldest held documents to train while those after them still make up
        // val's share (by tokens under --max-tokens, else by text bytes); one stays held.
        func release(tokenShare: Int?, byteShare: Int) throws {
            while held.count - heldHead > 1, tokenShare.map({ heldTokens - held[heldHead].tokens.count >= $0 })
                    ?? (heldBytes - held[heldHead].bytes >= byteShare) {
                try train.append(held[heldHead].tokens)
                heldTokens -= held[heldHead].tokens.count
                heldBytes -= held[heldHead].bytes
                heldHead += 1
            }
        }
        while !done {
            let (batch, readSoFar) = try reader.next()
            bytesRead = readSoFar
            if batch.isEmpty { break }
            let ids = tokenizer.encode(documents: batch)
            for (text, docIDs) in zip(batch, ids) {
                var tokens = [bos] + docIDs.map { UInt16($0) }
                if let cap = options.maxTokens, total + tokens.count >= cap {
                    tokens.removeLast(total + tokens.count - cap)
                    done = true
                }
                total += tokens.count
                textBytes += text.utf8.count
                documents += 1
                held.append((tokens, text.utf8.count))
                heldTokens += tokens.count
                heldBytes += text.utf8.count
                try release(tokenShare: holdTokens, byteShare: holdBytes)
                if heldHead > 4096 { held.removeFirst(heldHead); heldHead = 0 }
                if done { break }
            }
            if let progress, Date().timeIntervalSince(lastReport) >= 2 {
                lastReport = Date()
                progress(PrepareProgress(bytesRead: bytesRead, totalBytes: stream.totalBytes, documents: documents,
                                         tokens: total, seconds: lastReport.timeIntervalSince(start)))
            }
        }
        reader.stop()   // the stream is this thread's again
        // The estimate behind the hold-back may be off (JSON syntax, compression): with the
        // true totals known, release what is still more than val's share.
        try release(tokenShare: holdTokens.map { _ in Int(Double(total) * options.valFraction) },
                    byteShare: Int(Double(textBytes) * options.valFraction))
        held.removeFirst(heldHead)
        guard documents > 0 else {
            throw TokenizerError(stream.skipped > 0 ? "every row was skipped (\(stream.skipped)); nothing to prepare"
                                                     : "the input has no documents")
        }
        // Whole documents for val, unless they are more than twice the share asked, or would
        // leave train none (one document, or a share of a half or more): then the last tokens.
        let wantVal = Double(total) * options.valFraction
        let fromTail = held.count == documents || (holdTokens != nil ? Double(heldTokens) > 2 * wantVal
                                                            : Double(heldBytes) > 2 * Double(textBytes) * options.valFraction)
        let val = ShardWriter(dir: dir, split: "val", shardTokens: options.shardTokens)
        var trainDocuments = documents - held.count, valDocuments = held.count
        if fromTail {
            var tail = held.flatMap(\.tokens)
            let n = min(max(Int(wantVal.rounded()), 1), tail.count - 1)
            guard n >= 1 else { throw TokenizerError("the input has \(total) token(s); at least 2 are needed for train and val") }
            try train.append(Array(tail[..<(tail.count - n)]))
            tail.removeFirst(tail.count - n)
            if tail.first != bos { tail.insert(bos, at: 0) }
            try val.append(tail)
            trainDocuments = documents
            valDocuments = 1
        } else {
            for d in held { try val.append(d.tokens) }
        }
        try train.finish()
        try val.finish()
        if let progress {
            progress(PrepareProgress(bytesRead: stream.bytesRead, totalBytes: stream.totalBytes, documents: documents,
                                     tokens: total, seconds: Date().timeIntervalSince(start)))
        }
        func split(_ w: ShardWriter, documents: Int) -> [String: Any] {
            ["shards": zip(w.files, w.counts).map { ["file": $0, "tokens": $1] }, "tokens": w.tokens, "documents": documents]
        }
        var info: [String: Any] = [
            "format": indexFormat,
            "tokenizer_dir": tokenizerDir, "vocab_size": tokenizer.vocabSize, "tokenizer_hash": tokenizer.identity,
            "documents": options.documents.split.rawValue, "field": options.documents.field,
            "shard_tokens": options.shardTokens,
            "train": split(train, documents: trainDocuments), "val": split(val, documents: valDocuments),
            "train_tokens": train.tokens, "val_tokens": val.tokens,
            "train_documents": trainDocuments, "val_documents": valDocuments,
            "val_from_tail": fromTail, "skipped": stream.skipped,
            "sources": files.map { ["path": $0.path, "bytes": $0.size] },
        ]
        if let cap = options.maxTokens { info["max_tokens"] = cap }
        try AtomicFile.write(try JSONSerialization.data(withJSONObject: info, options: [.prettyPrinted, .sortedKeys]),
                             to: "\(dir)/\(infoFile)")
        return PreparedData(trainTokens: train.tokens, valTokens: val.tokens, trainDocuments: trainDocuments,
                            valDocuments: valDocuments, trainShards: train.files.count, valShards: val.files.count,
                            skipped: stream.skipped, skipReasons: stream.skipReasons, valFromTail: fromTail)
    }

    /// About how many bytes of text `file` holds: its size, or for a parquet file the
    /// uncompressed size of its text column, or for zstd four times the compressed size.
    public static func textBytesEstimate(_ file: CorpusFile, field: String) throws -> Int {
        switch file.format {
        case .parquet: return try ParquetFile(path: file.path, column: field).uncompressedBytes
        case .jsonl, .text: return file.zstd ? 4 * file.size : file.size
        }
    }

    /// Removes data.json and the shards of an earlier run (and temporary files left by one
    /// that was killed), data.json first.
    static func removeDataset(in dir: String) throws {
        let fm = FileManager.default
        if fm.fileExists(atPath: "\(dir)/\(infoFile)") {
            do { try fm.removeItem(atPath: "\(dir)/\(infoFile)") } catch {
                throw ShardError(path: "\(dir)/\(infoFile)", "cannot remove the earlier index: \(error.localizedDescription)")
            }
        }
        AtomicFile.removeStale(in: dir)
        let names = (try? fm.contentsOfDirectory(atPath: dir)) ?? []
        for name in names where isDatasetFile(name) && name != infoFile {
            try? fm.removeItem(atPath: "\(dir)/\(name)")
        }
    }

    /// data.json of `dir`, or nil when there is none.
    static func index(of dir: String) throws -> [String: Any]? {
        let info = "\(dir)/\(infoFile)"
        guard let data = try FolderFile.contents(info) else { return nil }
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ShardError(path: info, "not a JSON object; run `nanochat prepare` again to rewrite it")
        }
        // Every index this build writes has `format` = `indexFormat` (one without the key, as
        // the first were written, is read as that too). A later layout may move or rename what
        // is read here, so it is refused rather than half read.
        if let given = object["format"] {
            guard let format = JSONNumber.strictInt(given), format >= 1 else {
                throw ShardError(path: info, "format is \(JSONNumber.describe(given)), not a positive integer; run `nanochat prepare` again to rewrite it")
            }
            guard format <= indexFormat else {
                throw ShardError(path: info, "format \(format) is newer than this build reads (\(indexFormat)); "
                                 + "use a newer nanochat or run `nanochat prepare` again with this one")
            }
        }
        return object
    }

    /// Checks the data.json in `dir`, when there is one, against the tokenizer in use: its
    /// vocabulary size and (written since shards record it) its identity.
    public static func checkTokenizer(ofShardsIn dir: String, vocabSize: Int, identity: String?) throws {
        guard let object = try index(of: dir) else { return }
        let info = "\(dir)/\(infoFile)"
        if let given = object["vocab_size"] {
            guard let v = JSONNumber.strictInt(given) else {
                throw ShardError(path: info, "vocab_size is \(JSONNumber.describe(given)), not an integer; run `nanochat prepare` again to rewrite it")
            }
            guard v == vocabSize else {
                throw ShardError(path: info, "these shards were made with a tokenizer of vocab size \(v), but the tokenizer in use has \(vocabSize); run `nanochat prepare` again with this tokenizer")
            }
        }
        if let identity, let made = object["tokenizer_hash"] as? String, made != identity {
            throw ShardError(path: info, "these shards were made with another tokenizer (hash \(made)) than the one in use (\(identity)), "
                             + "though both have \(vocabSize) ids; run `nanochat prepare` again with this tokenizer")
        }
    }

    /// The shard files of `split` ("train" or "val") in `dir`: those data.json lists, or the
    /// single `train.bin` / `val.bin` of the earlier layout.
    static func shardFiles(_ split: String, in dir: String, index: [String: Any]?) throws -> [String] {
        let info = "\(dir)/\(infoFile)"
        guard let entry = index?[split] else {
            let single = "\(dir)/\(split).bin"
            if index == nil && !FileManager.default.fileExists(atPath: single) {
                if FileManager.default.fileExists(atPath: "\(dir)/\(shardName(split, 0))") {
                    throw ShardError(path: dir, "shards without \(infoFile): an unfinished `nanochat prepare`; run it again")
                }
                throw ShardError(path: info, "cannot open: No such file or directory; make the data with `nanochat prepare --out \(dir)`")
            }
            return [single]
        }
        guard let object = entry as? [String: Any], let shards = object["shards"] as? [[String: Any]], !shards.isEmpty else {
            throw ShardError(path: info, "\"\(split)\" lists no shards")
        }
        return try shards.map { s in
            guard let file = s["file"] as? String, !file.contains("/"), !file.hasPrefix(".") else {
                throw ShardError(path: info, "a \(split) shard entry without a plain file name")
            }
            return "\(dir)/\(file)"
        }
    }

    /// Opens the train and val streams of `dir`, checking every shard against `vocabSize`
    /// (and data.json's tokenizer, when present) and data.json's token counts. Errors name
    /// the file.
    public static func openShards(_ dir: String, vocabSize: Int, tokenizerIdentity: String? = nil) throws -> (train: TokenStream, val: TokenStream) {
        try checkTokenizer(ofShardsIn: dir, vocabSize: vocabSize, identity: tokenizerIdentity)
        let index = try index(of: dir)
        func open(_ split: String) throws -> TokenStream {
            let listed = (index?[split] as? [String: Any])?["shards"] as? [[String: Any]]
            let shards = try shardFiles(split, in: dir, index: index).enumerated().map { i, path in
                try FolderFile.requireInside(path)
                let shard = try TokenShard(path: path)
                if let given = listed?[i]["tokens"] {
                    guard let expected = JSONNumber.strictInt(given) else {
                        throw ShardError(path: "\(dir)/\(infoFile)", "\(split) shard \(i)'s tokens is \(JSONNumber.describe(given)), not an integer; run `nanochat prepare` again")
                    }
                    guard expected == shard.count else {
                        throw ShardError(path: path, "\(shard.count) tokens, but \(infoFile) says \(expected); run `nanochat prepare` again")
                    }
                }
                try shard.validate(vocabSize: vocabSize)
                return shard
            }
            return TokenStream(shards: shards)
        }
        return (try open("train"), try open("val"))
    }
}

/// Batches of documents (about `batchBytes` of text each, an empty one at the end) read on a
/// thread of its own, one batch ahead of the caller. A read error is thrown by the `next()`
/// that would have returned its batch. After `stop()` returns the thread has ended.
final class ReadAhead: @unchecked Sendable {
    private let stream: DocumentStream
    private let batchBytes: Int
    private let condition = NSCondition()
    private var ready: Result<([String], Int), Error>?
    private var stopping = false, ended = false

    init(_ stream: DocumentStream, batchBytes: Int) {
        self.stream = stream
        self.batchBytes = batchBytes
        let thread = Thread { [self] in produce() }
        thread.name = "prepare-reader"
        thread.start()
    }

    private func produce() {
        while true {
            let result = Result { () throws -> ([String], Int) in
                var batch: [String] = [], size = 0
                while size < batchBytes, let d = try stream.next() {
                    batch.append(d)
                    size += d.utf8.count
                }
                return (batch, stream.bytesRead)
            }
            condition.lock()
            while ready != nil && !stopping { condition.wait() }
            let last: Bool
            if stopping {
                last = true
            } else {
                ready = result
                if case .success(let (batch, _)) = result { last = batch.isEmpty } else { last = true }
            }
            if last { ended = true }
            condition.broadcast()
            condition.unlock()
            if last { return }
        }
    }

    /// The next batch and the input bytes read up to its end.
    func next() throws -> ([String], Int) {
        condition.lock()
        defer { condition.unlock() }
        while true {
            if let result = ready {
                ready = nil
                condition.broadcast()
                return try result.get()
            }
            condition.wait()
        }
    }

    /// Ends the reading thread (once the batch it is reading is done) and waits for it.
    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        while !ended { condition.wait() }
        condition.unlock()
    }
}

/// Fills shards of one split in order, writing each (atomically) when full.
final class ShardWriter {
    let dir: String, split: String, shardTokens: Int
    private var buffer: [UInt16] = []
    private(set) var files: [String] = [], counts: [Int] = []
    private(set) var tokens = 0

    init(dir: String, split: String, shardTokens: Int) {
        self.dir = dir; self.split = split; self.shardTokens = shardTokens
    }

    func append(_ ids: [UInt16]) throws {
        var rest = ids[...]
        while !rest.isEmpty {
            let take = min(rest.count, shardTokens - buffer.count)
            if buffer.count + take > buffer.capacity {
                // Grown by doubling, but never past one shard (the default shard is 200 MB).
                buffer.reserveCapacity(min(shardTokens, max(2 * buffer.capacity, buffer.count + take, 1 << 20)))
            }
            buffer += rest.prefix(take)
            rest = rest.dropFirst(take)
            tokens += take
            if buffer.count == shardTokens { try flush() }
        }
    }

    /// Writes what is left (an empty split still gets one, empty, shard).
    func finish() throws {
        if !buffer.isEmpty || files.isEmpty { try flush() }
    }

    private func flush() throws {
        let name = DataPreparation.shardName(split, files.count)
        try TokenShard.write(buffer, to: "\(dir)/\(name)")
        files.append(name)
        counts.append(buffer.count)
        buffer.removeAll(keepingCapacity: true)
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

extension DataPreparation {
    /// What `eval` reads: the val shards of a data directory, or one token shard file (whose
    /// directory's data.json, when it has one, must name the same tokenizer), checked against
    /// the vocabulary.
    public static func evaluationStream(_ data: String, vocabSize: Int, tokenizerIdentity: String?) throws -> TokenStream {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: data, isDirectory: &isDirectory), isDirectory.boolValue {
            return try openShards(data, vocabSize: vocabSize, tokenizerIdentity: tokenizerIdentity).val
        }
        let shardDir = AtomicFile.parentDirectory(data)
        try checkTokenizer(ofShardsIn: shardDir.isEmpty ? "." : shardDir, vocabSize: vocabSize, identity: tokenizerIdentity)
        let shard = try TokenShard(path: data)
        try shard.validate(vocabSize: vocabSize)
        return TokenStream(shard)
    }
}

/// The corpus reader's errors name the file, row and field at fault: shown as they are.
extension CorpusError: UserFacingError {}

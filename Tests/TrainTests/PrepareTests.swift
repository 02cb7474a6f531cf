// `prepare` at scale: fixed-size shards and their index, val from the end of the stream when
// the corpus is a few long documents, a prefix by token count, and a re-run that starts clean.
import Corpus
import Foundation
import Tensor
import Testing
import Train
import Tokenizer

func prepareText(_ text: String, _ configure: (inout PrepareOptions) -> Void = { _ in }) throws -> (dir: String, data: PreparedData, tokenizer: Tokenizer) {
    let tok = try Tokenizer.load(from: tokenizerFixtures + "/tokenizer")
    let input = scratchPath("input.txt"), dir = scratchPath("prepared")
    try text.write(toFile: input, atomically: false, encoding: .utf8)
    var options = PrepareOptions()
    configure(&options)
    let data = try DataPreparation.prepare(files: [try CorpusFile(path: input)], tokenizer: tok, tokenizerDir: "tok",
                                           options: options, to: dir)
    return (dir, data, tok)
}

/// The documents a prepared `dir`'s train then val shards hold: the text after each <|bos|>.
func preparedDocuments(_ dir: String, _ tok: Tokenizer) throws -> [String] {
    let (t, v) = try DataPreparation.openShards(dir, vocabSize: tok.vocabSize)
    let ids = t.tokens(from: 0, count: t.count) + v.tokens(from: 0, count: v.count)
    return try ids.split(separator: tok.bosID, omittingEmptySubsequences: false).dropFirst().map { try tok.decode(Array($0)) }
}

/// The first `limit` documents `prepare` reads from `text` (all of them by default).
func streamDocuments(_ text: String, limit: Int = .max) throws -> [String] {
    let input = scratchPath("documents.txt")
    try text.write(toFile: input, atomically: false, encoding: .utf8)
    let stream = DocumentStream(files: [try CorpusFile(path: input)])
    var documents: [String] = []
    while documents.count < limit, let d = try stream.next() { documents.append(d) }
    return documents
}

func shakespeare(_ characters: Int) throws -> String {
    String(try String(contentsOfFile: corpusPath, encoding: .utf8).prefix(characters))
}

@Suite struct PrepareTests {
    /// What `tokenizer train` counts: each document cut to --doc-cap characters (scalars, not
    /// bytes), batches until the budget, the batch that crosses it counted whole; the pieces
    /// those of the cut documents.
    @Test func tokenizerTrainingCountsCutDocumentsUpToTheBudget() throws {
        let input = scratchPath("docs.jsonl")
        let docs = ["abcdéfgh", "xyz", "hello world"]
        try docs.map { #"{"text": "\#($0)"}"# }.joined(separator: "\n").write(toFile: input, atomically: false, encoding: .utf8)
        func count(budget: Int, cap: Int) throws -> BPETraining.PieceCounter {
            try TokenizerCorpus.count(DocumentStream(files: [try CorpusFile(path: input)]), maxCharacters: budget, docCap: cap)
        }
        let all = try count(budget: 1000, cap: 4)
        #expect(all.characters == 4 + 3 + 4)
        #expect(Dictionary(uniqueKeysWithValues: zip(all.pieces, all.counts)) == ["abcd": 1, "xyz": 1, "hell": 1])
        // A budget of 5: the first document (4) is under it, the second crosses it; the third is not read.
        let some = try count(budget: 5, cap: 4)
        #expect(some.characters == 7 && Set(some.pieces) == ["abcd", "xyz"])
        let uncut = try count(budget: 1000, cap: 100)
        #expect(uncut.characters == 8 + 3 + 11 && Set(uncut.pieces) == ["abcdéfgh", "xyz", "hello", " world"])
    }

    @Test func shardsAndTheirIndexHoldTheWholeStream() throws {
        let text = try shakespeare(60_000)
        let (dir, data, tok) = try prepareText(text) { $0.shardTokens = 1000 }
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
        #expect(files.filter { $0.hasPrefix("train_") }.count == data.trainShards && data.trainShards == (data.trainTokens + 999) / 1000)
        #expect(files.contains("data.json") && files.contains("val_000000.bin"))
        let index = try #require(try JSONSerialization.jsonObject(with: bytes("\(dir)/data.json")) as? [String: Any])
        let train = try #require(index["train"] as? [String: Any])
        #expect(train["tokens"] as? Int == data.trainTokens && (train["shards"] as? [Any])?.count == data.trainShards)
        #expect(index["vocab_size"] as? Int == tok.vocabSize && index["tokenizer_hash"] as? String == tok.identity)
        #expect(index["format"] as? Int == 2, "data.json's format is SPEC's: 2")
        // The streams decode back to the documents, each after <|bos|>.
        #expect(try preparedDocuments(dir, tok) == streamDocuments(text))
        #expect(!data.valFromTail && data.valDocuments > 1)
        let share = Double(data.valTokens) / Double(data.trainTokens + data.valTokens)
        #expect(share > 0.07 && share < 0.13, "val is about a tenth: \(share)")
    }

    /// data.json's `format`: 2 (or none, as written before it was recorded) is read; a newer
    /// layout, or a format that is not a positive integer, is refused by name before any shard
    /// is opened.
    @Test func anIndexOfAnotherFormatIsRefused() throws {
        let (dir, _, tok) = try prepareText(try shakespeare(8_000)) { $0.shardTokens = 1000 }
        let path = "\(dir)/data.json"
        let written = try #require(try JSONSerialization.jsonObject(with: bytes(path)) as? [String: Any])
        func open(format: Any?) throws -> Int {
            var index = written
            index["format"] = format
            try JSONSerialization.data(withJSONObject: index).write(to: URL(fileURLWithPath: path))
            let (t, v) = try DataPreparation.openShards(dir, vocabSize: tok.vocabSize)
            return t.count + v.count
        }
        let total = try open(format: 2)
        #expect(total > 0)
        #expect(try open(format: nil) == total)
        #expect(try open(format: 1) == total)
        #expect(throws: ShardError(path: path, "format 3 is newer than this build reads (2); use a newer nanochat or run `nanochat prepare` again with this one")) {
            _ = try open(format: 3)
        }
        for (bad, shown) in [("2" as Any, "\"2\""), (0, "0"), (2.5, "2.5")] {
            #expect(throws: ShardError(path: path, "format is \(shown), not a positive integer; run `nanochat prepare` again to rewrite it")) {
                _ = try open(format: bad)
            }
        }
        // The tokenizer check reads the same index, so `eval` and `train` refuse it alike.
        _ = try? open(format: 3)
        #expect(throws: ShardError.self) { try DataPreparation.checkTokenizer(ofShardsIn: dir, vocabSize: tok.vocabSize, identity: nil) }
    }

    /// `eval --data` takes a prepared directory (its val split) or one shard file; the file's
    /// tokens are checked against the tokenizer recorded beside it. A stream of several
    /// shards names its first and how many follow.
    @Test func evaluationReadsADirectoryOrOneShard() throws {
        let (dir, data, tok) = try prepareText(try shakespeare(60_000)) { $0.shardTokens = 1000 }
        let (train, val) = try DataPreparation.openShards(dir, vocabSize: tok.vocabSize)
        let fromDir = try DataPreparation.evaluationStream(dir, vocabSize: tok.vocabSize, tokenizerIdentity: tok.identity)
        #expect(fromDir.count == data.valTokens && fromDir.tokens(from: 0, count: fromDir.count) == val.tokens(from: 0, count: val.count))
        let first = "\(dir)/train_000000.bin"
        let fromFile = try DataPreparation.evaluationStream(first, vocabSize: tok.vocabSize, tokenizerIdentity: tok.identity)
        #expect(fromFile.count == 1000 && fromFile.tokens(from: 0, count: 1000) == train.tokens(from: 0, count: 1000))
        #expect(fromFile.path == first)
        #expect(train.path == "\(first) and \(data.trainShards - 1) more shard(s)" && data.trainShards > 2)
        let other = try Tokenizer(tokenBytes: Array(tok.tokenBytes.prefix(256)) + tok.tokenBytes.dropFirst(256).reversed())
        #expect(throws: ShardError.self) {
            try DataPreparation.evaluationStream(first, vocabSize: tok.vocabSize, tokenizerIdentity: other.identity)
        }
        #expect(throws: ShardError.self) { try DataPreparation.evaluationStream(first, vocabSize: 300, tokenizerIdentity: nil) }
    }

    /// One long line (a book with its line breaks stripped) is a few documents cut at the
    /// bound; val is then the last tenth of the tokens, after a <|bos|>.
    /// Nothing to prepare is an error saying why (no documents at all, or every row skipped
    /// under --skip-bad), and leaves no data.json behind.
    @Test func noDocumentsIsAnErrorSayingWhy() throws {
        let tok = try Tokenizer.load(from: tokenizerFixtures + "/tokenizer")
        let input = scratchPath("bad.jsonl"), dir = scratchPath("prepared-nothing")
        try "{\"text\": 3}\n\n{\"body\": \"x\"}\nnot json\n".write(toFile: input, atomically: false, encoding: .utf8)
        var options = PrepareOptions()
        options.documents = DocumentOptions(skipBad: true)
        #expect(throws: TokenizerError("every row was skipped (3); nothing to prepare")) {
            try DataPreparation.prepare(files: [try CorpusFile(path: input)], tokenizer: tok, tokenizerDir: "tok", options: options, to: dir)
        }
        try "\n \n".write(toFile: input, atomically: false, encoding: .utf8)
        #expect(throws: TokenizerError("the input has no documents")) {
            try DataPreparation.prepare(files: [try CorpusFile(path: input)], tokenizer: tok, tokenizerDir: "tok", options: options, to: dir)
        }
        #expect(!FileManager.default.fileExists(atPath: dir + "/data.json"))
    }

    @Test func aSingleParagraphStillGivesTrainAndVal() throws {
        let text = try shakespeare(120_000).replacingOccurrences(of: "\n", with: " ")
        let (dir, data, tok) = try prepareText(text) { $0.documents = DocumentOptions(maxDocumentBytes: 64 << 10) }
        #expect(data.valFromTail && data.trainDocuments == 2)
        let (t, v) = try DataPreparation.openShards(dir, vocabSize: tok.vocabSize)
        let total = t.count + v.count - 1   // val's own <|bos|>
        #expect(abs(Double(v.count - 1) - 0.1 * Double(total)) <= 1)
        #expect(v.tokens(from: 0, count: 1) == [tok.bosID])
        let restored = try tok.decode(t.tokens(from: 0, count: t.count).filter { $0 != tok.bosID } + v.tokens(from: 1, count: v.count - 1))
        // Paragraph mode ends the (one) paragraph with a newline.
        let same = restored == text + "\n"
        #expect(same, "\(restored.utf8.count) bytes restored for \(text.utf8.count + 1)")
    }

    /// A val share so large that every whole document would be val takes val from the tail
    /// instead: train keeps the first tokens, val the last share of them.
    @Test func aShareThatWouldTakeEveryDocumentTakesTheTail() throws {
        let text = try shakespeare(20_000).replacingOccurrences(of: "\n", with: " ")
        let (dir, data, tok) = try prepareText(text) {
            $0.documents = DocumentOptions(maxDocumentBytes: 10_000)
            $0.valFraction = 0.6
        }
        #expect(data.valFromTail && data.trainDocuments >= 2 && data.valDocuments == 1, "\(data.trainDocuments) train documents")
        let (t, v) = try DataPreparation.openShards(dir, vocabSize: tok.vocabSize)
        #expect(t.count == data.trainTokens && v.count == data.valTokens)
        let share = Double(v.count - 1) / Double(t.count + v.count - 1)   // val's own <|bos|>
        #expect(t.count > 0 && abs(share - 0.6) < 0.001, "val share \(share)")
    }

    /// Two long documents and a short last one: the fewest last whole documents that reach a
    /// tenth hold over half the text, so val is the last tenth of the tokens instead.
    @Test func wholeDocumentsFarOverTheShareGiveWayToTheTail() throws {
        let text = try shakespeare(120_000).replacingOccurrences(of: "\n", with: " ")
        let (_, data, _) = try prepareText(text) { $0.documents = DocumentOptions(maxDocumentBytes: 55_000) }
        #expect(data.valFromTail && data.trainDocuments == 3)
        let share = Double(data.valTokens - 1) / Double(data.trainTokens + data.valTokens - 1)
        #expect(abs(share - 0.1) < 0.001, "val share \(share)")
    }

    /// The bound is twice the share, of the bytes or (with --max-tokens) of the tokens: a last
    /// document of a quarter of the text (2.5 times the tenth) gives way to the tail; one of
    /// 15% (1.5 times) is val whole.
    @Test(arguments: [false, true]) func theLastDocumentsGiveWayToTheTailAboveTwiceTheShare(countingTokens: Bool) throws {
        let speeches = try shakespeare(90_000)
        for (tail, fromTail) in [(30_000, true), (16_000, false)] {
            let last = String(try shakespeare(200_000).suffix(tail)).replacingOccurrences(of: "\n", with: " ")
            let (_, data, _) = try prepareText(speeches + "\n\n" + last) { if countingTokens { $0.maxTokens = 10_000_000 } }
            #expect(data.valFromTail == fromTail, "a last document of \(tail) bytes")
            let share = Double(data.valTokens) / Double(data.trainTokens + data.valTokens)
            if fromTail { #expect(abs(share - 0.1) < 0.002, "val share \(share)") } else { #expect(data.valDocuments == 1 && share > 0.12) }
        }
    }

    /// The text size val's share is held back by while reading: a plain file's size, four
    /// times a zstd file's, a parquet file's text column uncompressed (pyarrow's metadata:
    /// 5,652 bytes over three row groups).
    @Test func theTextSizeIsEstimatedPerFormat() throws {
        let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().path + "/CorpusTests/Fixtures"
        let plain = try CorpusFile(path: corpus + "/jsonl/docs.jsonl"), packed = try CorpusFile(path: corpus + "/jsonl/docs.jsonl.zst")
        #expect(plain.size == 3341 && packed.size == 527)
        #expect(try DataPreparation.textBytesEstimate(plain, field: "text") == 3341)
        #expect(try DataPreparation.textBytesEstimate(packed, field: "text") == 4 * 527)
        #expect(try DataPreparation.textBytesEstimate(try CorpusFile(path: corpus + "/parquet/zstd-v1-dict.parquet"), field: "text") == 5652)
        #expect(throws: (any Error).self) {
            try DataPreparation.textBytesEstimate(try CorpusFile(path: corpus + "/parquet/zstd-v1-dict.parquet"), field: "body")
        }
    }

    /// --max-tokens takes the stream's first documents up to the cap, the last one cut, and
    /// counts those documents, no more.
    @Test func maxTokensTakesAPrefix() throws {
        let text = try shakespeare(60_000)
        let (dir, data, tok) = try prepareText(text) { $0.maxTokens = 5000 }
        #expect(data.trainTokens + data.valTokens == 5000)
        #expect(data.valTokens >= 400 && data.valTokens <= 600, "val about a tenth of the prefix: \(data.valTokens)")
        let docs = try preparedDocuments(dir, tok)
        let paragraphs = try streamDocuments(text, limit: docs.count)
        try #require(!docs.isEmpty && paragraphs.count == docs.count && !data.valFromTail)
        #expect(Array(docs.dropLast()) == Array(paragraphs.dropLast()))
        #expect(paragraphs.last!.hasPrefix(docs.last!) && docs.last! != paragraphs.last!, "the last document is cut")
        #expect(data.trainDocuments + data.valDocuments == docs.count)
        let index = try #require(try JSONSerialization.jsonObject(with: bytes("\(dir)/data.json")) as? [String: Any])
        #expect(index["train_documents"] as? Int == data.trainDocuments && index["val_documents"] as? Int == data.valDocuments)
        #expect(index["max_tokens"] as? Int == 5000)
    }

    /// One token cannot be split into train and val (a cap of 1, which the library takes
    /// though `nanochat prepare` refuses it); two can.
    @Test func oneTokenCannotMakeTrainAndVal() throws {
        let text = "First Citizen:\nBefore we proceed any further, hear me speak.\n"
        #expect(throws: TokenizerError("the input has 1 token(s); at least 2 are needed for train and val")) {
            _ = try prepareText(text) { $0.maxTokens = 1 }
        }
        let two = try prepareText(text) { $0.maxTokens = 2 }.data
        #expect(two.trainTokens >= 1 && two.valTokens >= 1, "\(two.trainTokens) + \(two.valTokens)")
    }

    @Test func aReRunReplacesTheEarlierShards() throws {
        let text = try shakespeare(30_000)
        let (dir, _, tok) = try prepareText(text) { $0.shardTokens = 500 }
        let input = scratchPath("again.txt")
        try text.write(toFile: input, atomically: false, encoding: .utf8)
        // An earlier run killed before its index: stray shards and a temporary file.
        try Data("x".utf8).write(to: URL(fileURLWithPath: "\(dir)/train_000099.bin"))
        // Without overwrite the earlier dataset is kept, untouched.
        #expect(throws: TensorFileError.self) {
            try DataPreparation.prepare(files: [try CorpusFile(path: input)], tokenizer: tok, tokenizerDir: "tok",
                                        options: PrepareOptions(), to: dir)
        }
        #expect(FileManager.default.fileExists(atPath: "\(dir)/train_000002.bin"))
        _ = try DataPreparation.prepare(files: [try CorpusFile(path: input)], tokenizer: tok, tokenizerDir: "tok",
                                        options: PrepareOptions(), to: dir, overwrite: true)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
        #expect(files == [".lock", "data.json", "train_000000.bin", "val_000000.bin"])
    }

    @Test func theShardsDoNotDependOnTheThreadCount() throws {
        let text = try shakespeare(40_000)
        let (a, _, _) = try Parallel.withThreadCount(1) { try prepareText(text) { $0.shardTokens = 3000 } }
        let (b, _, _) = try Parallel.withThreadCount(2) { try prepareText(text) { $0.shardTokens = 3000 } }
        for name in try FileManager.default.contentsOfDirectory(atPath: a) where name.hasSuffix(".bin") {
            #expect(try bytes("\(a)/\(name)") == bytes("\(b)/\(name)"), "\(name)")
        }
    }
}

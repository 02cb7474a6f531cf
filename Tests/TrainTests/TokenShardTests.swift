// Token shards (llm.c format) and the batch order of SPEC §3.2; a fresh model's loss on a
// shard is ln V.
import Foundation
import Testing
import Tensor
import Blocks
import Train

func scratchPath(_ name: String) -> String {
    let dir = NSTemporaryDirectory() + "nanochat-train-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir + "/" + name
}

@Suite struct TokenShardTests {
    @Test func roundTripAndBatchOrder() throws {
        let path = scratchPath("a.bin")
        try TokenShard.write((0..<30).map { UInt16($0) }, to: path)
        let shard = try TokenShard(path: path)
        #expect(shard.count == 30 && shard.tokens[7] == 7)
        // llm.c's layout, byte by byte: 256 little-endian int32s (magic, version 1, the token
        // count, zeros), then the tokens as little-endian uint16s.
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(bytes.count == 1024 + 60)
        func int32(_ i: Int) -> Int {
            let b = bytes[(4 * i)..<(4 * i + 4)].map(Int.init)
            return b[0] | b[1] << 8 | b[2] << 16 | b[3] << 24
        }
        #expect(int32(0) == 20240520 && int32(1) == 1 && int32(2) == 30 && (3..<256).allSatisfy { int32($0) == 0 })
        func uint16(_ i: Int) -> Int { Int(bytes[1024 + 2 * i]) | Int(bytes[1025 + 2 * i]) << 8 }
        #expect((0..<30).map(uint16) == Array(0..<30))
        try TokenShard.write([0x1234, 0xfffe], to: path)
        #expect([UInt8](try Data(contentsOf: URL(fileURLWithPath: path))).suffix(4) == [0x34, 0x12, 0xfe, 0xff])
        try TokenShard.write((0..<30).map { UInt16($0) }, to: path)
        var loader = BatchLoader(shard: shard, batch: 2, sequence: 3)
        let first = loader.next()
        let (x0, y0) = try #require(first)
        #expect(x0.values == [0, 1, 2, 3, 4, 5] && y0.values == [1, 2, 3, 4, 5, 6] && x0.shape == [2, 3])
        // A loader over a stream (what evaluation uses) starts at its first token too.
        var overStream = BatchLoader(stream: TokenStream(shard), batch: 2, sequence: 3)
        #expect(overStream.position == 0 && overStream.next()?.x.values == x0.values)
        let second = loader.next()
        let (x1, _) = try #require(second)
        #expect(x1.values.first == 7, "the next batch starts right after the previous B·T+1 tokens")
        _ = loader.next(); _ = loader.next()
        #expect(loader.next() == nil, "30 tokens hold four batches of 7")
        // skip() passes over what another rank takes: exactly the B·T+1 tokens next() would read.
        var skipping = BatchLoader(shard: shard, batch: 2, sequence: 3)
        #expect(skipping.skip() && skipping.position == 7)
        let after = skipping.next()
        #expect(try #require(after).x.values == [7, 8, 9, 10, 11, 12], "the batch after a skipped one is the second")
        #expect(skipping.skip() && skipping.skip() && !skipping.skip() && skipping.position == 28)
    }

    @Test func badFilesNameTheProblem() throws {
        let path = scratchPath("bad.bin")
        try Data(repeating: 0, count: 100).write(to: URL(fileURLWithPath: path))
        #expect(throws: ShardError(path: path, "too short for a token shard: 100 bytes, the header alone is 1024")) {
            try TokenShard(path: path)
        }
        try Data(repeating: 0, count: 1024).write(to: URL(fileURLWithPath: path))
        #expect(throws: ShardError(path: path, "bad magic 0, expected 20240520: not a token shard")) { try TokenShard(path: path) }
        // A shard of another version of the format (its header's second word) is refused.
        try TokenShard.write([1, 2, 3, 4], to: path)
        var versioned = try Data(contentsOf: URL(fileURLWithPath: path))
        versioned[4] = 2
        try versioned.write(to: URL(fileURLWithPath: path))
        #expect(throws: ShardError(path: path, "unsupported version 2, expected 1")) { try TokenShard(path: path) }
        try TokenShard.write([1, 2, 3, 4], to: path)
        let full = try Data(contentsOf: URL(fileURLWithPath: path))
        try full.prefix(full.count - 2).write(to: URL(fileURLWithPath: path))
        #expect(throws: ShardError(path: path, "header says 4 tokens (1032 bytes) but the file has 1030 bytes")) {
            try TokenShard(path: path)
        }
        try TokenShard.write([1, 2, 900, 4], to: path)
        #expect(throws: ShardError(path: path, "token 900 at position 2 is outside the vocabulary of 512; was this shard made with another tokenizer?")) {
            try TokenShard(path: path).validate(vocabSize: 512)
        }
        // The bound: ids up to vocabSize - 1 are the vocabulary's, vocabSize itself is not.
        try TokenShard.write([0, 511, 3], to: path)
        try TokenShard(path: path).validate(vocabSize: 512)
        try TokenShard.write([0, 512, 3], to: path)
        #expect(throws: ShardError(path: path, "token 512 at position 1 is outside the vocabulary of 512; was this shard made with another tokenizer?")) {
            try TokenShard(path: path).validate(vocabSize: 512)
        }
    }

    @Test func freshModelLossOnAShardIsLogV() throws {
        let v = 300
        var g = SeededGenerator(seed: 1)
        let path = scratchPath("s.bin")
        try TokenShard.write((0..<2000).map { _ in UInt16(g.next() % UInt64(v)) }, to: path)
        let config = ModelConfig(sequenceLen: 32, vocabSize: v, nLayer: 2, nHead: 2, nKVHead: 2, nEmbd: 32,
                                 blockPattern: [.transformer, .mamba])
        let dir = (path as NSString).deletingLastPathComponent + "/ckpt"
        try Checkpoint.save(try GPT(config: config, seed: 5), step: 0, to: dir)
        let (model, _) = try Checkpoint.load(from: dir)
        var loader = BatchLoader(shard: try TokenShard(path: path), batch: 2, sequence: 32)
        var losses: [Double] = []
        while let (x, y) = loader.next() { losses.append(GradMode.withoutGradients { model.loss(x, targets: y).item }) }
        let mean = losses.reduce(0, +) / Double(losses.count)
        #expect(losses.count == 30 && abs(mean - log(Double(v))) < 0.01, "loss \(mean) vs ln V = \(log(Double(v)))")
    }
}

/// Tests/TokenizerTests/Fixtures: the small test tokenizer (`/tokenizer`).
let tokenizerFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("TokenizerTests/Fixtures").path

/// The repository's corpus, data/tinyshakespeare.txt.
let corpusPath = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("data/tinyshakespeare.txt").path

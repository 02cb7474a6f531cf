// The training run end to end on a slice of tinyshakespeare: stopping and resuming gives the
// same bytes as the uninterrupted run; evaluation bpb; bad inputs each give one clear error;
// NaN stops the run and keeps the last checkpoint.
import Foundation
import Testing
import Tensor
import Blocks
import Train
import Corpus
import Evaluation
import Inference
import Tokenizer

/// A data directory made by `prepare` from the first 80 kB of the corpus with the fixture
/// tokenizer (vocab 1024), in shards of `shardTokens`.
func preparedData(shardTokens: Int = 100_000_000, characters: Int = 80_000) throws -> (dir: String, tokenizer: Tokenizer) {
    let tok = try Tokenizer.load(from: tokenizerFixtures + "/tokenizer")
    let dir = scratchPath("data")
    let text = String(try String(contentsOfFile: corpusPath, encoding: .utf8).prefix(characters))
    let input = scratchPath("corpus.txt")
    try text.write(toFile: input, atomically: false, encoding: .utf8)
    _ = try DataPreparation.prepare(files: [try CorpusFile(path: input)], tokenizer: tok, tokenizerDir: tokenizerFixtures + "/tokenizer",
                                    options: { var o = PrepareOptions(); o.shardTokens = shardTokens; return o }(), to: dir)
    return (dir, tok)
}

/// A tiny TM hybrid's run config: 2 micro-batches of 2×32 per step.
func runConfig(data: String, output: String, extra: String = "") throws -> ConfigFile {
    let text = """
    depth = 2
    block_pattern = ["T", "M"]
    max_seq_len = 32
    device_batch_size = 2
    total_batch_size = 128
    num_iterations = 6
    eval_every = 3
    eval_tokens = 256
    sample_every = -1
    save_every = 3
    threads = 2
    data_dir = "\(data)"
    output_dir = "\(output)"
    \(extra)
    """
    return try ConfigFile.parse(text, file: "test.py", schema: TrainingKeys.byName)
}

func bytes(_ path: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path)) }

/// Serialized: a training run sets the process-wide thread count (its `threads` key), and
/// these runs are the heaviest tests, better one at a time on a small machine.
@Suite(.serialized) struct TrainingRunTests {
    @Test func resumeEqualsTheUninterruptedRunBitForBit() throws {
        let (data, tok) = try preparedData()
        let full = scratchPath("full"), resumed = scratchPath("resumed")
        let c = try runConfig(data: data, output: full)
        let settings = try TrainSettings.resolve(c, path: "test.py", vocabSize: tok.vocabSize)
        var lines: [String] = []
        let whole = try TrainingRun(settings: settings, tokenizer: tok, resume: nil) { lines.append($0) }.run()
        #expect(Checkpoint.steps(in: full) == [3, 6])
        #expect(whole.steps == 6)

        // The "interrupted" run: only the step-3 checkpoint survives, beside metrics written
        // past it (all six steps); resume it to step 6.
        try FileManager.default.createDirectory(atPath: resumed, withIntermediateDirectories: true)
        for name in ["model_000003.safetensors", "optim_000003.safetensors", "meta_000003.json", "metrics.jsonl"] {
            try FileManager.default.copyItem(atPath: "\(full)/\(name)", toPath: "\(resumed)/\(name)")
        }
        var s2 = settings
        s2.outputDir = resumed
        let rest = try TrainingRun(settings: s2, tokenizer: tok, resume: .latest) { _ in }.run()
        #expect(rest.steps == 3, "the resumed run trained steps 4 to 6")
        #expect(try bytes(Checkpoint.modelPath(resumed, step: 6)) == bytes(Checkpoint.modelPath(full, step: 6)))
        #expect(try bytes(Checkpoint.optimPath(resumed, step: 6)) == bytes(Checkpoint.optimPath(full, step: 6)))
        // And the resumed run really trained: step 6 differs from step 3.
        #expect(try bytes(Checkpoint.modelPath(resumed, step: 6)) != bytes(Checkpoint.modelPath(full, step: 3)))
        // The metrics: the rows up to the checkpoint kept (step 3's training row and its
        // evaluation among them), those after it written again, as the uninterrupted run
        // wrote them but for the times.
        func figures(_ dir: String) throws -> [[Double?]] {
            try MetricsFile.read("\(dir)/metrics.jsonl").map { [Double($0.step), $0.loss, $0.smoothLoss, $0.lrm, $0.valLoss, $0.valBPB] }
        }
        let kinds = try MetricsFile.read("\(resumed)/metrics.jsonl").map { "\($0.kind ?? "none")@\($0.step)" }
        #expect(kinds == ["val@0", "train@1", "train@2", "train@3", "val@3", "train@4", "train@5", "train@6", "val@6"])
        #expect(try figures(resumed) == figures(full))
        // smooth_loss is nanochat's: an average of the step losses weighted 0.9 back, over
        // 1 - 0.9^steps (computed here from the rows' losses).
        let train = try MetricsFile.read("\(full)/metrics.jsonl").filter { $0.kind == "train" }
        var ema = 0.0
        for (i, row) in train.enumerated() {
            ema = 0.9 * ema + 0.1 * (row.loss ?? .nan)
            let expected = ema / (1 - pow(0.9, Double(i + 1)))
            #expect(Swift.abs((row.smoothLoss ?? .nan) - expected) <= 1e-9 * expected, "step \(row.step): smooth_loss \(row.smoothLoss ?? .nan), not \(expected)")
        }
        // The timings agree with one another: tok_per_sec is a step's 128 tokens over its dt_ms,
        // elapsed_s the steps' times added up, and mfu the model's FLOPs at that rate over the
        // sgemm peak the run printed (rounded there to a tenth of a GFLOPS).
        let peakLine = try #require(lines.first { $0.contains("; sgemm peak ") })
        let peak = try #require(Double(peakLine.components(separatedBy: "sgemm peak ")[1].components(separatedBy: " GFLOPS")[0]))
        var elapsed = 0.0
        for row in train {
            let (dt, rate, mfu) = (row.dtMs ?? .nan, row.tokPerSec ?? .nan, row.mfu ?? .nan)
            elapsed += dt / 1000
            #expect(Swift.abs(rate * dt / 1000 - 128) <= 1e-9 * 128, "step \(row.step): \(rate) tokens/s over \(dt) ms")
            #expect(Swift.abs((row.elapsedS ?? .nan) - elapsed) <= 1e-9 * elapsed, "step \(row.step): elapsed_s \(row.elapsedS ?? .nan), not \(elapsed)")
            let expectedMFU = settings.model.flopsPerToken * rate / (peak * 1e9) * 100
            #expect(Swift.abs(mfu - expectedMFU) <= 0.06 / peak * expectedMFU, "step \(row.step): mfu \(mfu), not \(expectedMFU) at \(peak) GFLOPS")
        }
        // Each row is one JSON object on its line, its keys those docs/training.md names for
        // its kind and in sorted order (what tools that read the file, or diff two runs', see).
        let text = try String(contentsOfFile: "\(full)/metrics.jsonl", encoding: .utf8)
        let trainKeys = ["dt_ms", "elapsed_s", "kind", "loss", "lrm", "mfu", "smooth_loss", "step", "tok_per_sec"]
        for line in text.split(separator: "\n") {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let kind = object["kind"] as? String
            #expect(Set(object.keys) == Set(kind == "val" ? ["kind", "step", "val_bpb", "val_loss"] : trainKeys), "\(line)")
            // Each key's place in the line: sorted keys appear in increasing order.
            let places = object.keys.sorted().map { line.range(of: "\"\($0)\":")?.lowerBound }
            #expect(places.allSatisfy { $0 != nil } && zip(places, places.dropFirst()).allSatisfy { $0! < $1! }, "keys not sorted: \(line)")
        }
        let steps = lines.filter { $0.hasPrefix("step 00006/00006") }
        #expect(steps.count == 1, "the step line: \(lines.joined(separator: "\n"))")
        // loss.svg: the smoothed train loss at every step, the val loss with a dot at each of
        // its 3 evaluations, the last val bpb in the title; the resumed run draws the same.
        let svg = try String(contentsOfFile: "\(full)/loss.svg", encoding: .utf8)
        let lastBPB = try #require(try MetricsFile.read("\(full)/metrics.jsonl").last { $0.valBPB != nil }?.valBPB)
        #expect(svg.contains(String(format: "): loss (last val bpb %.3f)</text>", lastBPB)))
        let svgLines = svg.split(separator: "\n")
        let polylines = svgLines.filter { $0.hasPrefix("<polyline") }.map { LineChartTests.attributeText("points", String($0))?.split(separator: " ").count }
        #expect(polylines == [6, 3] && svgLines.filter { $0.hasPrefix("<circle") }.count == 3 + 1, "\(polylines)")
        #expect(svg.contains(">train (smoothed)</text>") && svg.contains(">val</text>"))
        #expect(try String(contentsOfFile: "\(resumed)/loss.svg", encoding: .utf8) == svg)
    }

    /// The same corpus in 200-token shards is the same stream: a run over it crosses shard
    /// boundaries (a step takes 130 tokens) and equals the run over one shard bit for bit,
    /// and a checkpoint taken mid-shard resumes to the same bits.
    @Test func aRunCrossesShardsAndResumesMidShardBitExactly() throws {
        let (one, tok) = try preparedData()
        let (many, _) = try preparedData(shardTokens: 200)
        let a = try DataPreparation.openShards(one, vocabSize: tok.vocabSize), b = try DataPreparation.openShards(many, vocabSize: tok.vocabSize)
        #expect(a.train.shards.count == 1 && b.train.shards.count > 50 && b.val.shards.count > 5)
        #expect(a.train.count == b.train.count && a.val.count == b.val.count)
        #expect(a.train.tokens(from: 0, count: a.train.count) == b.train.tokens(from: 0, count: b.train.count))
        #expect(b.train.tokens(from: 190, count: 20) == a.train.tokens(from: 190, count: 20), "across the first boundary")

        let outOne = scratchPath("one-shard"), outMany = scratchPath("many-shards"), resumed = scratchPath("many-resumed")
        let s1 = try TrainSettings.resolve(try runConfig(data: one, output: outOne), path: "test.py", vocabSize: tok.vocabSize)
        let s2 = try TrainSettings.resolve(try runConfig(data: many, output: outMany), path: "test.py", vocabSize: tok.vocabSize)
        _ = try TrainingRun(settings: s1, tokenizer: tok, resume: nil) { _ in }.run()
        _ = try TrainingRun(settings: s2, tokenizer: tok, resume: nil) { _ in }.run()
        #expect(try bytes(Checkpoint.modelPath(outMany, step: 6)) == bytes(Checkpoint.modelPath(outOne, step: 6)))

        // Step 3 stands at token 3 × 130 = 390: shard 1, offset 190.
        let meta = try JSONDecoder().decode(TrainingMeta.self, from: bytes(Checkpoint.metaPath(outMany, step: 3)))
        #expect(meta.resume?.trainPosition == 390 && meta.resume?.trainShard == 1 && meta.resume?.shardOffset == 190)
        #expect(meta.resume?.trainTokens == b.train.count)
        try FileManager.default.createDirectory(atPath: resumed, withIntermediateDirectories: true)
        for name in ["model_000003.safetensors", "optim_000003.safetensors", "meta_000003.json"] {
            try FileManager.default.copyItem(atPath: "\(outMany)/\(name)", toPath: "\(resumed)/\(name)")
        }
        var s3 = s2
        s3.outputDir = resumed
        _ = try TrainingRun(settings: s3, tokenizer: tok, resume: .latest) { _ in }.run()
        #expect(try bytes(Checkpoint.modelPath(resumed, step: 6)) == bytes(Checkpoint.modelPath(outMany, step: 6)))

        // The checkpoint refuses to resume on another stream.
        var s4 = s3
        s4.dataDir = try preparedData(shardTokens: 200, characters: 60_000).dir
        #expect {
            try TrainingRun(settings: s4, tokenizer: tok, resume: .step(3), overwrite: true) { _ in }
        } throws: { error in
            "\(error)".contains("the checkpoint was trained on a train stream of \(b.train.count) tokens")
        }
    }

    /// meta_S.json's user_config holds every training key with the value the run used:
    /// those set, the defaults, and those that follow from other keys.
    /// A step line's figures: tokens a second grouped by thousands, and a data-parallel step's
    /// exchange times (given in seconds) shown in milliseconds.
    @Test func aStepLinesFiguresAreGroupedAndInMilliseconds() {
        #expect([0, 7, 999, 1000, 65_536, 1_234_567].map(TrainingRun.grouped) == ["0", "7", "999", "1,000", "65,536", "1,234,567"])
        #expect(TrainingRun.exchangeText(wait: 0.0012, reduce: 0.25, gather: 0.0304)
                == " | wait: 1.2ms | reduce-scatter: 250.0ms | all-gather: 30.4ms")
    }

    @Test func userConfigListsEveryKeyAsUsed() throws {
        let (data, tok) = try preparedData()
        let out = scratchPath("userconfig")
        let c = try runConfig(data: data, output: out, extra: "num_iterations = 3\nsave_every = -1")
        let settings = try TrainSettings.resolve(c, path: "configs/tiny.py", vocabSize: tok.vocabSize)
        _ = try TrainingRun(settings: settings, tokenizer: tok, resume: nil) { _ in }.run()
        let meta = try JSONSerialization.jsonObject(with: bytes(Checkpoint.metaPath(out, step: 3))) as? [String: Any]
        let user = try #require(meta?["user_config"] as? [String: Any])
        #expect(Set(user.keys) == Set(TrainingKeys.all.map(\.name)))
        #expect(user["depth"] as? Int == 2 && user["max_seq_len"] as? Int == 32)                 // set
        #expect(user["matrix_lr"] as? Double == OptimizerSettings().matrixLR)                    // default
        #expect(user["mamba_d_state"] as? Int == MambaDefaults.dState && user["seed"] as? Int == 42)
        #expect(user["n_embd"] as? Int == 128 && user["n_head"] as? Int == 1)                   // from depth
        #expect(user["vocab_size"] as? Int == tok.vocabSize)                                    // from the tokenizer
        #expect(user["block_pattern"] as? [String] == ["T", "M"])
        #expect(user["model_tag"] as? String == "tiny" && user["output_dir"] as? String == out)
        #expect(user["tokenizer_dir"] as? String == "\(data)/tokenizer" && user["threads"] as? Int == 2)
        #expect(user["target_flops"] as? Double == -1 && user["num_iterations"] as? Int == 3)
        // Read back as types: the config values, and the state a resume starts from (3 steps
        // of 2 micro-batches, each B·T + 1 = 65 tokens further into the train stream, SPEC §3.2).
        let typed = try Checkpoint.meta(TrainingMeta.self, in: out, step: 3)
        #expect(typed.userConfig["depth"] == .int(2) && typed.userConfig["block_pattern"] == .list(["T", "M"]))
        #expect(typed.userConfig["mamba_use_mlp"] == .bool(false) && typed.userConfig["model_tag"] == .string("tiny"))
        #expect(typed.resume?.trainPosition == 3 * 2 * 65 && typed.resume?.epoch == 0 && typed.resume?.numIterations == 3)
        let rows = try MetricsFile.read("\(out)/metrics.jsonl")
        #expect(rows.map(\.step) == [0, 1, 2, 3, 3] && rows.filter { $0.valBPB != nil }.map(\.step) == [0, 3])
        // Each row says its kind: the evaluations at steps 0 and 3, the three steps between.
        #expect(rows.map { $0.kind ?? "none" } == ["val", "train", "train", "train", "val"])
        #expect(rows.map(\.isEvaluation) == [true, false, false, false, true])
    }

    /// Over a text corpus (long documents) and over short JSONL documents, so that <|bos|>
    /// targets, which count neither nats nor bytes, are in the evaluated batches.
    @Test(arguments: [false, true]) func evaluationBitsPerByteFollowTheSpec(shortDocuments: Bool) throws {
        var (data, tok) = try preparedData()
        if shortDocuments {
            let input = scratchPath("docs.jsonl")
            let lines = (0..<600).map { i in #"{"text": "document \#(i): a few words of text, then the end."}"# }
            try (lines.joined(separator: "\n") + "\n").write(toFile: input, atomically: false, encoding: .utf8)
            data = scratchPath("data-short")
            _ = try DataPreparation.prepare(files: [try CorpusFile(path: input)], tokenizer: tok, tokenizerDir: tokenizerFixtures + "/tokenizer",
                                            options: PrepareOptions(), to: data)
        }
        let val = try DataPreparation.openShards(data, vocabSize: tok.vocabSize).val
        let model = try GPT(config: ModelConfig(sequenceLen: 32, vocabSize: tok.vocabSize, nLayer: 1, nHead: 1, nKVHead: 1,
                                                nEmbd: 32, blockPattern: [.mamba]), seed: 5)
        let e = try Evaluator.evaluate(model, stream: val, batch: 2, sequence: 32, maxBatches: 3, byteLengths: tok.byteLengths)
        // By hand from the per-token losses: nats over non-special targets / (ln 2 · their bytes).
        var loader = BatchLoader(stream: val, batch: 2, sequence: 32)
        var nats = 0.0, byteCount = 0, all = 0.0, bosTargets = 0, firstBatch = 0.0
        for i in 0..<3 {
            let (x, y) = loader.next()!
            for (l, t) in zip(model.tokenLosses(x, targets: y), y.values) {
                all += Double(l)
                if i == 0 { firstBatch += Double(l) }
                if t != tok.bosID { nats += Double(l); byteCount += tok.tokenBytes[Int(t)].count } else { bosTargets += 1 }
            }
        }
        #expect(!shortDocuments || bosTargets >= 3, "the short documents put only \(bosTargets) <|bos|> targets in the batches")
        #expect(e.batches == 3 && e.tokens == 192)
        #expect(abs(e.loss - all / 192) < 1e-12)
        #expect(abs(e.bpb! - nats / (log(2) * Double(byteCount))) < 1e-12)
        // A fresh model predicts near-uniformly: loss ≈ ln V.
        #expect(abs(e.loss - log(Double(tok.vocabSize))) < 0.05)
        // Over 2 ranks (each every other batch, the sums added): on every rank the same
        // counts, and the same loss and bpb to the rounding of adding in another order.
        let (config, lengths, dataDir, vocab) = (model.config, tok.byteLengths, data, tok.vocabSize)
        let ranks = try InProcessWorld.run(InProcessWorld.group(size: 2, sharedWindow: false)) { world in
            try Evaluator.evaluate(try GPT(config: config, seed: 5), stream: try DataPreparation.openShards(dataDir, vocabSize: vocab).val,
                                   batch: 2, sequence: 32, maxBatches: 3, byteLengths: lengths, world: world)
        }
        for (r, got) in ranks.enumerated() {
            #expect(got.batches == 3 && got.tokens == 192, "rank \(r): \(got.batches) batches, \(got.tokens) tokens")
            #expect(abs(got.loss - e.loss) < 1e-12 && abs((got.bpb ?? .nan) - (e.bpb ?? .nan)) < 1e-12, "rank \(r)")
        }
        // One batch is an evaluation too (a val split that holds a single batch).
        let one = try Evaluator.evaluate(model, stream: val, batch: 2, sequence: 32, maxBatches: 1, byteLengths: nil)
        #expect(one.batches == 1 && one.tokens == 64 && one.bpb == nil && abs(one.loss - firstBatch / 64) < 1e-12)
    }

    @Test func badInputsGiveOneClearError() throws {
        let (data, tok) = try preparedData()
        let out = scratchPath("bad")

        // total_batch_size not a multiple of B·T.
        let c1 = try runConfig(data: data, output: out, extra: "total_batch_size = 100")
        #expect(throws: ConfigError(file: "test.py", line: 14, column: 20,
                                    "total_batch_size 100 is not a multiple of device_batch_size × max_seq_len = 2 × 32 = 64 tokens; use 64 or 128")) {
            try TrainSettings.resolve(c1, path: "test.py", vocabSize: tok.vocabSize)
        }
        // Over ranks the step is B·T·ranks; fewer tokens than one step rounds up to one.
        let c2 = try runConfig(data: data, output: out, extra: "total_batch_size = 320")
        #expect(throws: ConfigError(file: "test.py", line: 14, column: 20,
                                    "total_batch_size 320 is not a multiple of device_batch_size × max_seq_len × ranks = 2 × 32 × 3 = 192 tokens; use 192 or 384")) {
            try TrainSettings.resolve(c2, path: "test.py", vocabSize: tok.vocabSize, worldSize: 3)
        }
        #expect(throws: ConfigError(file: "test.py", line: 14, column: 20,
                                    "total_batch_size 100 is not a multiple of device_batch_size × max_seq_len × ranks = 2 × 32 × 2 = 128 tokens; use 128 or 256")) {
            try TrainSettings.resolve(c1, path: "test.py", vocabSize: tok.vocabSize, worldSize: 2)
        }
        #expect(try TrainSettings.resolve(c2, path: "test.py", vocabSize: tok.vocabSize, worldSize: 5).totalBatchSize == 320)
        let settings = try TrainSettings.resolve(try runConfig(data: data, output: out), path: "test.py", vocabSize: tok.vocabSize)

        // Missing shard.
        var s = settings
        s.dataDir = data + "/nowhere"
        #expect(throws: ShardError(path: data + "/nowhere/data.json", "cannot open: No such file or directory; make the data with `nanochat prepare --out \(data)/nowhere`")) {
            try TrainingRun(settings: s, tokenizer: tok, resume: nil) { _ in }
        }
        // Corrupt shard: cut short.
        let corrupt = scratchPath("corrupt")
        try FileManager.default.createDirectory(atPath: corrupt, withIntermediateDirectories: true)
        for name in ["val_000000.bin", "data.json"] { try FileManager.default.copyItem(atPath: "\(data)/\(name)", toPath: "\(corrupt)/\(name)") }
        try bytes("\(data)/train_000000.bin").prefix(5000).write(to: URL(fileURLWithPath: "\(corrupt)/train_000000.bin"))
        s.dataDir = corrupt
        #expect(throws: ShardError.self) { try TrainingRun(settings: s, tokenizer: tok, resume: nil) { _ in } }

        // Shards of another vocabulary (data.json says so), and tokens past the vocabulary.
        #expect(throws: ShardError(path: "\(data)/data.json", "these shards were made with a tokenizer of vocab size 1024, but the tokenizer in use has 512; run `nanochat prepare` again with this tokenizer")) {
            try DataPreparation.openShards(data, vocabSize: 512)
        }
        // Without data.json (the single-file layout earlier versions wrote), each token is still
        // checked against the vocabulary.
        try FileManager.default.removeItem(atPath: "\(data)/data.json")
        try FileManager.default.moveItem(atPath: "\(data)/train_000000.bin", toPath: "\(data)/train.bin")
        try FileManager.default.moveItem(atPath: "\(data)/val_000000.bin", toPath: "\(data)/val.bin")
        #expect { try DataPreparation.openShards(data, vocabSize: 512) } throws: { "\($0)".contains("is outside the vocabulary of 512") }

        // Resume with a checkpoint of another model.
        var small = settings
        small.numIterations = 3
        _ = try TrainingRun(settings: small, tokenizer: tok, resume: nil) { _ in }.run()
        let other = try TrainSettings.resolve(try runConfig(data: data, output: out, extra: "block_pattern = [\"M\", \"M\"]"),
                                              path: "test.py", vocabSize: tok.vocabSize)
        #expect(throws: TrainingError("\(out)/meta_000003.json: the checkpoint is of another model than the config; block_pattern: checkpoint [\"T\",\"M\"], config [\"M\",\"M\"]")) {
            try TrainingRun(settings: other, tokenizer: tok, resume: .latest) { _ in }
        }
        #expect(throws: TrainingError("\(out): no checkpoint for step 5 (have: 3)")) {
            try TrainingRun(settings: settings, tokenizer: tok, resume: .step(5)) { _ in }
        }
        // A checkpoint saved before any time was counted resumes; a negative time is refused.
        let metaPath = "\(out)/meta_000003.json"
        for (elapsed, accepted) in [(0.0, true), (-1.0, false)] {
            var meta = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: metaPath))) as? [String: Any])
            var state = try #require(meta["resume"] as? [String: Any])
            state["elapsed_seconds"] = elapsed
            meta["resume"] = state
            try JSONSerialization.data(withJSONObject: meta).write(to: URL(fileURLWithPath: metaPath))
            if accepted {
                #expect(throws: Never.self, "elapsed_seconds 0") { _ = try TrainingRun(settings: small, tokenizer: tok, resume: .latest) { _ in } }
            } else {
                #expect { try TrainingRun(settings: small, tokenizer: tok, resume: .latest) { _ in } } throws: {
                    "\($0)".contains("\(metaPath): resume state out of range")
                }
            }
        }
    }

    /// Resuming an earlier step of a run that saved later ones: refused naming them without
    /// --overwrite; with it the run goes on from that step and its later checkpoint is the
    /// uninterrupted run's again. A step past the run's length is refused, as is a checkpoint
    /// another command wrote (no resume state); a change of precision is allowed with a warning.
    @Test func resumingAnEarlierStepOrAForeignCheckpoint() throws {
        let (data, tok) = try preparedData()
        let out = scratchPath("earlier")
        let settings = try TrainSettings.resolve(try runConfig(data: data, output: out), path: "test.py", vocabSize: tok.vocabSize)
        _ = try TrainingRun(settings: settings, tokenizer: tok, resume: nil) { _ in }.run()
        #expect(Checkpoint.steps(in: out) == [3, 6])
        let six = try bytes(Checkpoint.modelPath(out, step: 6))
        #expect(throws: TrainingError("\(out) holds checkpoints after step 3 (steps 6); resuming from step 3 would replace them: "
                                      + "--resume continues the latest, --overwrite replaces them (at this run's first save), "
                                      + "or copy the checkpoint into another output_dir")) {
            try TrainingRun(settings: settings, tokenizer: tok, resume: .step(3)) { _ in }
        }
        var lines: [String] = []
        _ = try TrainingRun(settings: settings, tokenizer: tok, resume: .step(3), overwrite: true) { lines.append($0) }.run()
        #expect(Checkpoint.steps(in: out) == [3, 6])
        #expect(try bytes(Checkpoint.modelPath(out, step: 6)) == six)
        #expect(try MetricsFile.read("\(out)/metrics.jsonl").map(\.step) == [0, 1, 2, 3, 3, 4, 5, 6, 6])
        // (Only the checkpoint's own warnings: a loaded machine may add one about its sgemm peak.)
        let aboutTheCheckpoint = { (line: String) in line.hasPrefix("warning: \(out)") }
        #expect(!lines.contains(where: aboutTheCheckpoint), "\(lines.filter(aboutTheCheckpoint))")

        var short = settings
        short.numIterations = 5
        #expect(throws: TrainingError("\(Checkpoint.metaPath(out, step: 6)): step 6 is past the run's 5 steps (\(short.horizon))")) {
            try TrainingRun(settings: short, tokenizer: tok, resume: .latest) { _ in }
        }
        short.numIterations = 6
        short.precision = short.precision == .float32 ? .bfloat16 : .float32
        var warnings: [String] = []
        _ = try TrainingRun(settings: short, tokenizer: tok, resume: .latest) { if aboutTheCheckpoint($0) { warnings.append($0) } }
        #expect(warnings == ["warning: \(Checkpoint.metaPath(out, step: 6)): the run so far multiplied in \(settings.precision.rawValue), "
                             + "this continuation in \(short.precision.rawValue): it goes on, but not bit for bit as the uninterrupted "
                             + "run would (--dtype=\(settings.precision.rawValue) keeps the run's precision)"])

        // A checkpoint without the training state (as fine-tuning writes them).
        let metaPath = Checkpoint.metaPath(out, step: 6)
        var meta = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: metaPath))) as? [String: Any])
        meta["resume"] = nil
        try JSONSerialization.data(withJSONObject: meta).write(to: URL(fileURLWithPath: metaPath))
        #expect(throws: TrainingError("\(metaPath): no resume state; this checkpoint was not written by `nanochat train`")) {
            try TrainingRun(settings: settings, tokenizer: tok, resume: .latest) { _ in }
        }
    }

    /// A micro-batch takes B·T + 1 tokens: a train or val stream of exactly that many is
    /// enough, one token fewer is refused naming the shard and the numbers.
    @Test func eachStreamNeedsOneMicroBatch() throws {
        let (data, tok) = try preparedData(characters: 3000)
        let (train, val) = try DataPreparation.openShards(data, vocabSize: tok.vocabSize)
        #expect(train.count > val.count + 1)
        var settings = try TrainSettings.resolve(try runConfig(data: data, output: scratchPath("micro")), path: "test.py", vocabSize: tok.vocabSize)
        settings.deviceBatchSize = 1
        settings.sequenceLen = val.count - 1
        _ = try TrainingRun(settings: settings, tokenizer: tok, resume: nil, overwrite: true) { _ in }
        settings.sequenceLen = val.count
        #expect(throws: ShardError(path: val.path, "\(val.count) tokens, fewer than one evaluation batch of 1×\(val.count)+1")) {
            try TrainingRun(settings: settings, tokenizer: tok, resume: nil, overwrite: true) { _ in }
        }
        settings.sequenceLen = train.count - 1
        #expect(throws: ShardError(path: val.path, "\(val.count) tokens, fewer than one evaluation batch of 1×\(train.count - 1)+1")) {
            try TrainingRun(settings: settings, tokenizer: tok, resume: nil, overwrite: true) { _ in }
        }
        settings.sequenceLen = train.count
        #expect(throws: ShardError(path: train.path, "\(train.count) tokens, fewer than one micro-batch of 1×\(train.count)+1")) {
            try TrainingRun(settings: settings, tokenizer: tok, resume: nil, overwrite: true) { _ in }
        }
    }

    /// With sample_every = 2 over 4 steps the run logs, at steps 2 and 4, each sample prompt
    /// continued greedily from <|bos|> and the prompt's ids by at most 32 tokens, stopping
    /// before a <|bos|>: what the checkpoint saved at that step writes.
    @Test func samplesAreGreedyContinuationsAtTheirSteps() throws {
        let (data, tok) = try preparedData()
        let out = scratchPath("samples")
        var settings = try TrainSettings.resolve(try runConfig(data: data, output: out), path: "test.py", vocabSize: tok.vocabSize)
        (settings.numIterations, settings.sampleEvery, settings.saveEvery, settings.evalEvery) = (4, 2, 2, -1)
        var samples: [String] = []
        _ = try TrainingRun(settings: settings, tokenizer: tok, resume: nil) { line in
            if line.hasPrefix("sample: ") { samples.append(line) }
        }.run()
        var expected: [String] = []
        for step in [2, 4] {
            let (model, _) = try Checkpoint.load(from: out, step: step)
            for prompt in TrainingRun.samplePrompts {
                var sampler = Sampler(temperature: 0, topK: 0, seed: 0)
                var ids: [Int32] = []
                Precision.with(settings.precision) {
                    Generator.generate(model, prompt: [tok.bosID] + tok.encode(prompt), maxNewTokens: 32, sampler: &sampler) { id in
                        if id == tok.bosID { return false }
                        ids.append(id)
                        return true
                    }
                }
                #expect(ids.count <= 32)
                expected.append("sample: \(prompt.debugDescription) → \(try tok.decode(ids).debugDescription)")
            }
        }
        #expect(TrainingRun.samplePrompts.count == 3)
        #expect(samples == expected)
    }

    /// A fresh run into a directory of checkpoints that fails its checks (a typo in data_dir,
    /// shards of another tokenizer) changes nothing there; one that starts keeps the old
    /// checkpoints until its own first save, then removes them.
    @Test func aFreshRunReplacesCheckpointsOnlyAtItsFirstSave() throws {
        let (data, tok) = try preparedData()
        let out = scratchPath("replace")
        var settings = try TrainSettings.resolve(try runConfig(data: data, output: out), path: "test.py", vocabSize: tok.vocabSize)
        settings.numIterations = 3
        // A run that replaces nothing writes its metrics to metrics.jsonl from the start.
        var metricsAtStep1: (rows: Int, next: Bool)? = nil
        _ = try TrainingRun(settings: settings, tokenizer: tok, resume: nil) { line in
            guard line.hasPrefix("step 00001/"), metricsAtStep1 == nil else { return }
            metricsAtStep1 = ((try? MetricsFile.read("\(out)/metrics.jsonl").count) ?? 0,
                              FileManager.default.fileExists(atPath: "\(out)/metrics.jsonl.next"))
        }.run()
        #expect(metricsAtStep1.map { $0.rows >= 1 && !$0.next } == true, "\(String(describing: metricsAtStep1))")
        // The run's files (the lock file, rewritten by each attempt to take the run, aside).
        func regularFiles() throws -> [String] {
            try FileManager.default.contentsOfDirectory(atPath: out).filter { name in
                guard name != RunLock.fileName else { return false }
                var isDir: ObjCBool = false
                return FileManager.default.fileExists(atPath: "\(out)/\(name)", isDirectory: &isDir) && !isDir.boolValue
            }.sorted()
        }
        let files = try regularFiles()
        #expect(files.contains("model_000003.safetensors") && files.contains("metrics.jsonl"))
        let saved = try files.map { try bytes("\(out)/\($0)") }

        // Without overwrite a fresh run is refused before it reads anything.
        #expect(throws: TrainingError.self) { try TrainingRun(settings: settings, tokenizer: tok, resume: nil) { _ in } }
        var typo = settings
        typo.dataDir = data + "/typo"
        #expect(throws: ShardError.self) { try TrainingRun(settings: typo, tokenizer: tok, resume: nil, overwrite: true) { _ in } }
        let other = try Tokenizer(tokenBytes: Array(tok.tokenBytes.prefix(256)) + tok.tokenBytes.dropFirst(256).reversed())   // same size, other ids
        #expect(throws: ShardError.self) { try TrainingRun(settings: settings, tokenizer: other, resume: nil, overwrite: true) { _ in } }
        #expect(try regularFiles() == files)
        #expect(try files.map { try bytes("\(out)/\($0)") } == saved)

        // Saves at 2 and 4: step 3's files stay until the save at step 2, and are gone after.
        var fresh = settings
        fresh.numIterations = 4
        fresh.saveEvery = 2
        var stepsAtFirstSave: [Int]? = nil, metricsAtFirstSave: Data? = nil
        let oldMetrics = try bytes("\(out)/metrics.jsonl")
        _ = try TrainingRun(settings: fresh, tokenizer: tok, resume: nil, overwrite: true) { line in
            if line.hasPrefix("step 00002/"), stepsAtFirstSave == nil {
                stepsAtFirstSave = Checkpoint.steps(in: out)
                metricsAtFirstSave = try? bytes("\(out)/metrics.jsonl")
            }
        }.run()
        #expect(stepsAtFirstSave == [3], "before the first save the old checkpoint is still there")
        #expect(metricsAtFirstSave == oldMetrics, "before the first save the old run's metrics are still there, unchanged")
        #expect(try MetricsFile.read("\(out)/metrics.jsonl").map(\.step).last == 4)
        #expect(!FileManager.default.fileExists(atPath: "\(out)/metrics.jsonl.next"))
        #expect(Checkpoint.steps(in: out) == [2, 4])
        #expect(!FileManager.default.fileExists(atPath: Checkpoint.modelPath(out, step: 3)))
        #expect(!FileManager.default.fileExists(atPath: Checkpoint.optimPath(out, step: 3)))
    }

    /// One run per output directory: a second lock on it fails naming the holder, and the
    /// lock is free again once the holder lets go.
    @Test func theOutputDirectoryHasOneRunAtATime() throws {
        let dir = scratchPath("locked")
        var first: RunLock? = try RunLock(dir: dir, purpose: "test")
        do {
            _ = try RunLock(dir: dir, purpose: "second")
            Issue.record("a second lock on \(dir) was granted")
        } catch let e as TrainingError {
            #expect(e.description.hasPrefix("\(dir) is in use by another run (pid \(getpid()) on "), "\(e)")
            #expect(e.description.contains("test since"), "\(e)")
        }
        _ = first
        first = nil
        _ = try RunLock(dir: dir, purpose: "third")
    }

    /// A training run in one process takes its output directory's lock when it is made and
    /// holds it until it is let go of.
    @Test func aTrainingRunHoldsItsOutputDirectory() throws {
        let (data, tok) = try preparedData(characters: 6_000)
        let out = scratchPath("held")
        let settings = try TrainSettings.resolve(try runConfig(data: data, output: out, extra: "num_iterations = 1"),
                                                 path: "test.py", vocabSize: tok.vocabSize)
        var run: TrainingRun? = try TrainingRun(settings: settings, tokenizer: tok, resume: nil) { _ in }
        #expect { _ = try RunLock(dir: out, purpose: "second") } throws: { "\($0)".contains("is in use by another run") }
        _ = run
        run = nil
        _ = try RunLock(dir: out, purpose: "after the run")
    }

    /// Another process's lock is refused at once, naming what its holder wrote into the file
    /// (here a program that is not nanochat, util-linux's `flock`, over a file holding "x").
    @Test func anotherProcesssLockIsRefusedNamingWhatItsHolderWrote() throws {
        let dir = scratchPath("other")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let file = dir + "/" + RunLock.fileName
        try Data("x".utf8).write(to: URL(fileURLWithPath: file))
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/flock")
        holder.arguments = ["--exclusive", "--no-fork", file, "sleep", "30"]
        try holder.run()
        defer { kill(holder.processIdentifier, SIGKILL); holder.waitUntilExit() }
        // Until the holder has it.
        let probe = open(file, O_RDONLY | O_CLOEXEC)
        defer { close(probe) }
        var tries = 0
        while flock(probe, LOCK_EX | LOCK_NB) == 0 && tries < 1000 {
            flock(probe, LOCK_UN)
            usleep(10_000)
            tries += 1
        }
        try #require(tries < 1000, "flock never took \(file)")
        #expect(throws: TrainingError("\(dir) is in use by another run (x); wait for it to finish, stop it, or give another output directory")) {
            try RunLock(dir: dir, purpose: "test")
        }
    }

    /// A lock let go of while a child process that another thread is starting still holds a
    /// copy of its descriptor (from the fork to the exec) is taken once the child lets go,
    /// not refused as another run's: the suite's parallel tests start processes while runs
    /// take and leave locks. Here the child's copy lives on past its exec (a `dup` is not
    /// close-on-exec) for 0.3 s.
    @Test func aLockHeldOnlyByAStartingChildIsWaitedFor() throws {
        let dir = scratchPath("child")
        var first: RunLock? = try RunLock(dir: dir, purpose: "test")
        let file = URL(fileURLWithPath: dir + "/" + RunLock.fileName).resolvingSymlinksInPath().path
        let fds = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").compactMap { Int32($0) }
        let fd = try #require(fds.first { (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\($0)")) == file },
                              "no descriptor of \(file) among \(fds.count)")
        let copy = dup(fd)
        #expect(copy >= 0)
        var child: pid_t = 0
        var argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/sleep"), strdup("0.3"), nil]
        defer { argv.forEach { free($0) } }
        let spawned = ContinuousClock.now
        #expect(posix_spawn(&child, "/bin/sleep", nil, nil, &argv, environ) == 0)
        close(copy)
        _ = first
        first = nil
        _ = try RunLock(dir: dir, purpose: "after the child")
        // The child lets go when it exits, 0.3 s or more after it was started. (Whether it can
        // be waited for yet is no test: a process lets go of its files before its parent can
        // reap it, and a loaded machine shows the gap.)
        let waited = ContinuousClock.now - spawned
        #expect(waited >= .milliseconds(300), "the lock was taken \(waited) after the child started, while it still held it")
        var status: Int32 = 0
        if child > 0 { #expect(waitpid(child, &status, 0) == child) }
    }

    /// Checkpoints and shards record the tokenizer; another one of the same size is refused.
    @Test func anotherTokenizerOfTheSameSizeIsRefused() throws {
        let (data, tok) = try preparedData()
        let other = try Tokenizer(tokenBytes: Array(tok.tokenBytes.prefix(256)) + tok.tokenBytes.dropFirst(256).reversed())
        #expect(other.vocabSize == tok.vocabSize && other.identity != tok.identity)
        #expect(tok.identity == (try Tokenizer(tokenBytes: tok.tokenBytes)).identity)
        #expect(throws: ShardError.self) { try DataPreparation.openShards(data, vocabSize: tok.vocabSize, tokenizerIdentity: other.identity) }
        _ = try DataPreparation.openShards(data, vocabSize: tok.vocabSize, tokenizerIdentity: tok.identity)

        let out = scratchPath("tokmeta")
        var settings = try TrainSettings.resolve(try runConfig(data: data, output: out), path: "test.py", vocabSize: tok.vocabSize)
        settings.numIterations = 3
        _ = try TrainingRun(settings: settings, tokenizer: tok, resume: nil) { _ in }.run()
        // Resuming with the other tokenizer: the shards' data.json would refuse it first, so
        // make it name the other one, to reach the checkpoint's own record.
        var index = try #require(try JSONSerialization.jsonObject(with: bytes("\(data)/data.json")) as? [String: Any])
        index["tokenizer_hash"] = other.identity
        try JSONSerialization.data(withJSONObject: index).write(to: URL(fileURLWithPath: "\(data)/data.json"))
        do {
            _ = try TrainingRun(settings: settings, tokenizer: other, resume: .latest) { _ in }
            Issue.record("resumed with another tokenizer")
        } catch let e as TrainingError {
            #expect(e.description.contains("the checkpoint was trained with another tokenizer (hash \(tok.identity))"), "\(e)")
        }
    }

    @Test func nonFiniteStopsTheRunAndKeepsTheLastCheckpoint() throws {
        let (data, tok) = try preparedData()
        let out = scratchPath("nan")
        let c = try runConfig(data: data, output: out, extra: "save_every = 1\nmatrix_lr = 1e30\nembedding_lr = 1e30")
        let settings = try TrainSettings.resolve(c, path: "test.py", vocabSize: tok.vocabSize)
        do {
            _ = try TrainingRun(settings: settings, tokenizer: tok, resume: nil) { _ in }.run()
            Issue.record("a learning rate of 1e30 should overflow")
        } catch let e as TrainingError {
            let saved = Checkpoint.steps(in: out)
            #expect(!saved.isEmpty, "the steps before the overflow were saved")
            #expect(e.description.contains("is NaN or Inf; training stopped and the last checkpoint, step \(saved.last!) in \(out), is kept"), "\(e)")
            _ = try Checkpoint.load(from: out)   // and it still loads
        }
    }

    /// core_metric_every: a `core` metrics row at each such step and at the end, whose CORE
    /// is what `CoreScoring` gives the saved checkpoint on the same examples; a missing bundle
    /// and a bad task file stop the run before it starts.
    @Test func coreMetricEveryWritesTheCheckpointsCORE() throws {
        let (data, tok) = try preparedData()
        let bundle = URL(fileURLWithPath: corpusPath).deletingLastPathComponent().appendingPathComponent("core_shakespeare").path
        let out = scratchPath("core")
        let extra = "core_metric_every = 4\ncore_metric_max_per_task = 6\ncore_bundle = \"\(bundle)\"\nsave_every = 4\nnum_iterations = 6"
        let settings = try TrainSettings.resolve(try runConfig(data: data, output: out, extra: extra), path: "test.py", vocabSize: tok.vocabSize)
        var lines: [String] = []
        _ = try TrainingRun(settings: settings, tokenizer: tok, resume: nil) { lines.append($0) }.run()
        let rows = try MetricsFile.read("\(out)/metrics.jsonl").filter { $0.kind == "core" }
        #expect(rows.map(\.step) == [4, 6])
        #expect(lines.contains { $0.hasPrefix("step 00004 | CORE metric: ") })
        let cores = try CoreBundle(directory: bundle)
        for row in rows {
            let model = try Checkpoint.load(from: out, step: row.step).model
            let results = try Precision.with(settings.precision) {
                try cores.tasks.map { task in
                    let examples = CorePrompts.evaluationOrder(try cores.examples(of: task), maxPerTask: 6)
                    let correct = try CoreScoring.evaluate(examples, task: task, indices: Array(examples.indices), model: model, tokenizer: tok)
                    return CoreTaskResult(task: task, examples: examples.count, correct: correct)
                }
            }
            #expect(row.coreMetric == CoreScoring.core(results), "step \(row.step)")
            #expect(row.centeredResults == Dictionary(uniqueKeysWithValues: results.map { ($0.task.label, $0.centered) }))
        }
        let noBundle = try runConfig(data: data, output: scratchPath("core2"), extra: "core_metric_every = 4")
        #expect(throws: ConfigError.self) { try TrainSettings.resolve(noBundle, path: "test.py", vocabSize: tok.vocabSize) }
        let out3 = scratchPath("core3")
        let missing = try TrainSettings.resolve(try runConfig(data: data, output: out3, extra: "core_metric_every = 4\ncore_bundle = \"/nonexistent\""),
                                                path: "test.py", vocabSize: tok.vocabSize)
        #expect(throws: CoreBundleError.self) { try TrainingRun(settings: missing, tokenizer: tok, resume: nil) { _ in } }
        #expect(!FileManager.default.fileExists(atPath: out3 + "/metrics.jsonl") && Checkpoint.steps(in: out3).isEmpty)
        // core_metric_every ≤ 0 is never: a bundle named beside it is not even read.
        for every in [0, -1] {
            let off = try TrainSettings.resolve(try runConfig(data: data, output: scratchPath("core-off\(every)"),
                                                              extra: "core_metric_every = \(every)\ncore_bundle = \"/nonexistent\""),
                                                path: "test.py", vocabSize: tok.vocabSize)
            #expect(throws: Never.self, "core_metric_every = \(every)") { _ = try TrainingRun(settings: off, tokenizer: tok, resume: nil) { _ in } }
        }
    }
}

// The model: configuration checks, parameter names and initialisation, the loss of a fresh
// model, gradients through whole blocks in Float64, and decoding with caches.
import Foundation
import Testing
import Tensor
import Blocks

/// Every suite of this target nests here.
@Suite struct BlocksTests {}

/// A tiny config: C = 16, H = 2, V = 23, N = 4, expand 2 (Di = 32), R = 1.
func tinyConfig(_ pattern: String, kvHeads: Int = 2, mlp: Bool = false, vocab: Int = 23) -> ModelConfig {
    ModelConfig(sequenceLen: 16, vocabSize: vocab, nLayer: pattern.count, nHead: 2, nKVHead: kvHeads, nEmbd: 16,
                blockPattern: try! ModelConfig.parsePattern(pattern.map(String.init)), mambaDState: 4, mambaDConv: 4,
                mambaExpand: 2, mambaUseMLP: mlp)
}

/// Parameters away from their init (zero projections would hide gradient paths): each
/// tensor plus 0.2·N(0, 1).
func perturbedParameters(_ config: ModelConfig, seed: UInt64, dtype: DType = .float32) -> ParameterSet {
    let base = ParameterSet.initialized(config, seed: seed, dtype: dtype)
    var g = SeededGenerator(seed: seed &+ 1)
    return base.replacingTensors(base.tensors.map { t in
        let noise = Tensor.randomNormal(t.shape, std: 0.2, dtype: dtype, generator: &g)
        let y = Tensor(shape: t.shape, scalars: zip(t.doubles, noise.doubles).map { $0 + $1 }, dtype: dtype, requiresGrad: true)
        return y
    })
}

func tokens(_ shape: [Int], below v: Int, seed: UInt64) -> IndexTensor {
    var g = SeededGenerator(seed: seed)
    return IndexTensor(shape: shape, values: (0..<shape.reduce(1, *)).map { _ in Int32(g.next() % UInt64(v)) })
}

extension BlocksTests {
    @Suite struct ConfigTests {
        @Test func sizesFromDepth() {
            let c = ModelConfig.fromDepth(12, vocabSize: 8192, sequenceLen: 512)
            #expect(c.nEmbd == 768 && c.nHead == 6 && c.nKVHead == 6 && c.headDim == 128)
            #expect(c.mambaInner == 1536 && c.dtRank == 48)
            #expect(c.blockPattern == Array(repeating: .transformer, count: 12))
            #expect(ModelConfig.fromDepth(1, vocabSize: 10, sequenceLen: 8).nHead == 1)
            // Heads round up (nanochat's (C + 127) // 128): d3 has C = 192 in two heads of 96,
            // d7 C = 448 in four of 112, not 192 and 448 in one head and three.
            let heads = [1, 2, 3, 4, 5, 6, 7, 16, 20].map { ModelConfig.fromDepth($0, vocabSize: 10, sequenceLen: 8).nHead }
            #expect(heads == [1, 1, 2, 2, 3, 3, 4, 8, 10])
            #expect(ModelConfig.fromDepth(3, vocabSize: 10, sequenceLen: 8).headDim == 96)
            // Mamba's dt rank is ⌈n_embd / 16⌉ (mamba_ssm's "auto"), odd widths of an all-Mamba model too.
            for (width, rank) in [(16, 1), (17, 2), (31, 2), (32, 2), (33, 3), (100, 7)] {
                let mamba = ModelConfig(sequenceLen: 8, vocabSize: 10, nLayer: 1, nHead: 1, nKVHead: 1, nEmbd: width, blockPattern: [.mamba])
                #expect(mamba.dtRank == rank, "n_embd \(width)")
            }
        }

        @Test func patternSpellingsAnyCase() throws {
            #expect(try ModelConfig.parsePattern(["T", "m", "Transformer", "MAMBA"]) == [.transformer, .mamba, .transformer, .mamba])
        }

        /// The named patterns the benchmark and the sweep compare, layer by layer: early-T is
        /// round(0.6·depth) T then M (the seed's 12 + 8 of 20); mostly-M puts max(1,
        /// round(depth/12)) T at the middle of equal spans; a literal pattern in any case.
        @Test func namedPatternsLayerByLayer() throws {
            func letters(_ name: String, _ depth: Int) throws -> String {
                try NamedPattern.parse(name, depth: depth).map(\.rawValue).joined()
            }
            let expected: [(String, Int, String)] = [
                ("all-T", 3, "TTT"), ("all-M", 3, "MMM"), ("alternating", 5, "TMTMT"),
                ("early-T", 1, "T"), ("early-T", 4, "TTMM"), ("early-T", 12, "TTTTTTTMMMMM"), ("early-T", 20, "TTTTTTTTTTTTMMMMMMMM"),
                ("mostly-M", 1, "T"), ("mostly-M", 4, "MMTM"), ("mostly-M", 12, "MMMMMMTMMMMM"), ("mostly-M", 17, "MMMMMMMMTMMMMMMMM"),
                ("mostly-M", 18, "MMMMTMMMMMMMMTMMMM"), ("mostly-M", 20, "MMMMMTMMMMMMMMMTMMMM"),
                ("mostly-M", 36, "MMMMMMTMMMMMMMMMMMTMMMMMMMMMMMTMMMMM"),
                ("tMmT", 4, "TMMT"),
            ]
            for (name, depth, pattern) in expected { #expect(try letters(name, depth) == pattern, "\(name) at depth \(depth)") }
            #expect(NamedPattern.allCases.map(\.rawValue) == ["all-T", "all-M", "early-T", "alternating", "mostly-M"])
            #expect(throws: ModelConfigError(key: "block_pattern", "pattern TMT has 3 layers, the depth is 4; give a name "
                                             + "(all-T, all-M, early-T, alternating, mostly-M) or one letter per layer")) {
                try NamedPattern.parse("TMT", depth: 4)
            }
        }

        @Test func badEntryNamesIndexAndSpellings() {
            #expect(throws: ModelConfigError(key: "block_pattern", "block_pattern[2] is \"X\"; valid entries are \(BlockKind.spellings)")) {
                try ModelConfig.parsePattern(["T", "M", "X"])
            }
        }

        @Test func wrongLengthAndHeads() {
            var c = tinyConfig("TM")
            c.nLayer = 3
            #expect(throws: ModelConfigError(key: "block_pattern", "block_pattern has 2 entries but n_layer is 3; give one entry per layer")) {
                try c.validate()
            }
            #expect(throws: ModelConfigError(key: "n_kv_head", "n_kv_head 3 must divide n_head 2")) { try tinyConfig("T", kvHeads: 3).validate() }
        }

        /// A use that needs more than the machine's memory is refused, saying how much it
        /// needs and how much there is; exactly the machine's memory is allowed.
        @Test func aModelTooLargeForThisMachineIsRefused() throws {
            let c = tinyConfig("TM"), have = Double(ProcessInfo.processInfo.physicalMemory)
            try c.checkFitsInMemory(have, for: "training")
            try c.checkFitsInMemory(Double(c.weightBytes), for: "training")
            #expect(c.weightBytes == 4 * c.parameterCount)
            let gib = String(format: "%.1f GiB", have / 1_073_741_824)
            #expect(throws: ModelConfigError(key: "n_layer", "a model of \(c.parameterCount) parameters needs about 3072.0 GiB for training; "
                                             + "this machine has \(gib)")) {
                try c.checkFitsInMemory(max(have + 1, 3072 * 1_073_741_824), for: "training")
            }
        }

        @Test func checkpointWithoutPatternLoadsAsAllTransformer() throws {
            let json = #"{"sequence_len": 8, "vocab_size": 10, "n_layer": 3, "n_head": 1, "n_kv_head": 1, "n_embd": 8}"#
            let c = try JSONDecoder().decode(ModelConfig.self, from: Data(json.utf8))
            #expect(c.blockPattern == [.transformer, .transformer, .transformer])
            let round = try JSONDecoder().decode(ModelConfig.self, from: JSONEncoder().encode(tinyConfig("TMT", mlp: true)))
            #expect(round == tinyConfig("TMT", mlp: true))
        }
    }

    @Suite struct ParameterTests {
        @Test func namesShapesAndGroupsFollowTheSpec() {
            let specs = tinyConfig("TM").parameterSpecs
            let names = specs.map(\.name)
            #expect(names == [
                "transformer.wte.weight",
                "transformer.h.0.attn.c_q.weight", "transformer.h.0.attn.c_k.weight", "transformer.h.0.attn.c_v.weight",
                "transformer.h.0.attn.c_proj.weight", "transformer.h.0.mlp.c_fc.weight", "transformer.h.0.mlp.c_proj.weight",
                "transformer.h.1.mixer.in_proj.weight", "transformer.h.1.mixer.conv1d.weight",
                "transformer.h.1.mixer.conv1d.bias", "transformer.h.1.mixer.x_proj.weight",
                "transformer.h.1.mixer.dt_proj.weight", "transformer.h.1.mixer.dt_proj.bias", "transformer.h.1.mixer.A_log",
                "transformer.h.1.mixer.D", "transformer.h.1.mixer.out_proj.weight", "lm_head.weight",
            ])
            let shape = Dictionary(uniqueKeysWithValues: specs.map { ($0.name, $0.shape) })
            #expect(shape["transformer.h.1.mixer.in_proj.weight"] == [64, 16])
            #expect(shape["transformer.h.1.mixer.conv1d.weight"] == [32, 1, 4])
            #expect(shape["transformer.h.1.mixer.x_proj.weight"] == [1 + 8, 32])
            #expect(shape["transformer.h.1.mixer.dt_proj.weight"] == [32, 1])
            #expect(shape["transformer.h.1.mixer.A_log"] == [32, 4])
            let group = Dictionary(uniqueKeysWithValues: specs.map { ($0.name, $0.group) })
            #expect(group["transformer.wte.weight"] == .adamEmbedding && group["lm_head.weight"] == .adamHead)
            #expect(group["transformer.h.1.mixer.dt_proj.weight"] == .muonMatrix)
            #expect(group["transformer.h.1.mixer.A_log"] == .adamMambaScalar)
            #expect(group["transformer.h.1.mixer.conv1d.bias"] == .adamMambaScalar)
        }

        @Test func initialisationFollowsTheSpec() {
            let config = ModelConfig.fromDepth(2, vocabSize: 50, sequenceLen: 8, blockPattern: [.mamba, .transformer])
            let p = ParameterSet.initialized(config, seed: 7)
            #expect(p["lm_head.weight"].doubles.allSatisfy { $0 == 0 })
            for zero in ["transformer.h.1.attn.c_proj.weight", "transformer.h.1.mlp.c_proj.weight", "transformer.h.0.mixer.out_proj.weight"] {
                #expect(p[zero].doubles.allSatisfy { $0 == 0 }, "\(zero) should start at zero")
            }
            let aLog = p["transformer.h.0.mixer.A_log"].doubles
            #expect(aLog[0] == 0 && abs(aLog[15] - log(16)) < 1e-6 && abs(aLog[16]) < 1e-9)
            #expect(p["transformer.h.0.mixer.D"].doubles.allSatisfy { $0 == 1 })
            // softplus(dt_proj.bias) lies in [1e-3, 1e-1] (up to Float rounding).
            let dt = p["transformer.h.0.mixer.dt_proj.bias"].doubles.map { log1p(exp($0)) }
            #expect(dt.allSatisfy { $0 >= 0.99e-3 && $0 <= 0.101 })
            // c_q: std = 1/sqrt(128) · min(1, sqrt(128/128)).
            let q = p["transformer.h.1.attn.c_q.weight"].doubles
            let std = (q.map { $0 * $0 }.reduce(0, +) / Double(q.count)).squareRoot()
            #expect(abs(std - 1 / 128.0.squareRoot()) < 0.005, "c_q std \(std)")
            let bound = 1 / 2.0   // conv: U(-1/sqrt(K), 1/sqrt(K)), K = 4
            #expect(p["transformer.h.0.mixer.conv1d.weight"].doubles.allSatisfy { abs($0) <= bound })
        }

        @Test func sameSeedSameBytes() {
            let c = tinyConfig("TMT")
            let a = ParameterSet.initialized(c, seed: 3).tensors.flatMap { $0.floats.map(\.bitPattern) }
            let b = ParameterSet.initialized(c, seed: 3).tensors.flatMap { $0.floats.map(\.bitPattern) }
            let other = ParameterSet.initialized(c, seed: 4).tensors.flatMap { $0.floats.map(\.bitPattern) }
            #expect(a == b)
            #expect(a != other)
        }
    }

    @Suite struct ModelGradientTests {
        @Test func freshModelLossIsLogV() throws {
            for pattern in ["T", "M", "TM"] {
                let model = try GPT(config: tinyConfig(pattern, vocab: 37), seed: 1)
                let loss = model.loss(tokens([2, 8], below: 37, seed: 2), targets: tokens([2, 8], below: 37, seed: 3)).item
                #expect(abs(loss - log(37)) < 1e-5, "\(pattern): \(loss)")
            }
        }

        /// Weights still arriving: the forward pass asks for each stage's parameters before it
        /// reads them. The stand-in below zeroes every parameter and puts a stage's values back
        /// only when asked, so a forward that read a parameter early would give other logits.
        @Test(arguments: ["TM", "M+mlp", "TMMT"])
        func theForwardPassWaitsForEachStagesWeights(_ which: String) throws {
            let pattern = String(which.prefix(while: { $0 != "+" }))
            let model = try GPT(config: tinyConfig(pattern, mlp: which.hasSuffix("mlp")), seed: 3)
            let idx = tokens([2, 6], below: 23, seed: 4), targets = tokens([2, 6], below: 23, seed: 5)
            let logits = model.logits(idx).floats, loss = model.loss(idx, targets: targets).item
            let stages = model.parameterStages, layers = pattern.count
            for (p, stage) in zip(model.parameters.parameters, stages) {
                let expected = p.name == "transformer.wte.weight" ? 0 : p.name == "lm_head.weight" ? layers + 1
                    : 1 + (Int(p.name.split(separator: ".")[2]) ?? -1)
                #expect(stage == expected, "\(p.name): stage \(stage), expected \(expected)")
            }
            for forward in ["logits", "loss", "settle"] {
                let held = HeldWeights(model)
                model.arriving = held
                switch forward {
                case "logits": #expect(model.logits(idx).floats == logits, "\(which): logits with weights arriving")
                case "loss": #expect(model.loss(idx, targets: targets).item == loss, "\(which): loss with weights arriving")
                default: model.settleWeights()
                }
                #expect(forward == "settle" ? held.asked.isEmpty : held.asked == Array(0...(layers + 1)), "\(forward): asked \(held.asked)")
                model.settleWeights()
                #expect(held.settled && model.arriving == nil)
                #expect(model.logits(idx).floats == logits)
            }
        }

        // One Transformer block, one Mamba block, a Mamba block with MLP, grouped KV heads,
        // and a 2-layer hybrid: the loss's gradient for every parameter.
        @Test(arguments: ["T", "M", "M+mlp", "T+gqa", "TM"])
        func lossGradientPassesGradcheck(_ which: String) throws {
            let pattern = String(which.prefix(while: { $0 != "+" }))
            let config = tinyConfig(pattern, kvHeads: which.hasSuffix("gqa") ? 1 : 2, mlp: which.hasSuffix("mlp"))
            let params = perturbedParameters(config, seed: 5)
            let idx = tokens([2, 6], below: 23, seed: 6), targets = tokens([2, 6], below: 23, seed: 7)
            let report = gradcheck(params.tensors, maxElementsPerInput: 24) { xs in
                let model = try! GPT(config: config, parameters: params.replacingTensors(xs))
                return model.loss(idx, targets: targets)
            }
            #expect(report.passed, "\(which): \(report)")
        }
    }

    @Suite struct DecodeTests {
        // Prefill 5 tokens, then 6 one at a time: each step's logits equal the full
        // forward's logits at that position to 1e-4 (Float32).
        // "+grow": the cache starts with room for one position and grows as decoding needs.
        @Test(arguments: ["T", "M", "TMMT", "T+gqa", "M+mlp", "TMMT+grow"])
        func cachedDecodingMatchesFullForward(_ which: String) throws {
            let pattern = String(which.prefix(while: { $0 != "+" }))
            let config = tinyConfig(pattern, kvHeads: which.hasSuffix("gqa") ? 1 : 2, mlp: which.hasSuffix("mlp"))
            let model = try GPT(config: config, parameters: perturbedParameters(config, seed: 8))
            let (b, prompt, total) = (2, 5, 11)
            let ids = tokens([b, total], below: 23, seed: 9)
            try GradMode.withoutGradients {
                let full = model.logits(ids).doubles
                let cache = DecodeCache(config: config, batch: b, capacity: which.hasSuffix("grow") ? 1 : total)
                let v = config.vocabSize
                func column(_ t0: Int, _ t1: Int) -> IndexTensor {
                    IndexTensor(shape: [b, t1 - t0], values: (0..<b).flatMap { bi in ids.values[(bi * total + t0)..<(bi * total + t1)] })
                }
                func expectRows(_ got: [Double], _ t0: Int, _ t1: Int) {
                    var worst = 0.0
                    for bi in 0..<b { for t in t0..<t1 { for j in 0..<v {
                        worst = max(worst, abs(got[(bi * (t1 - t0) + t - t0) * v + j] - full[(bi * total + t) * v + j]))
                    } } }
                    #expect(worst < 1e-4, "\(which): positions \(t0)..<\(t1) differ by \(worst)")
                }
                expectRows(model.logits(column(0, prompt), cache: cache).doubles, 0, prompt)
                for t in prompt..<total { expectRows(model.logits(column(t, t + 1), cache: cache).doubles, t, t + 1) }
                #expect(cache.length == total)
                _ = try #require(cache.byteCount > 0 ? cache : nil)
            }
        }

        // Three sequences prefilled to different lengths (3, 5, 8), then stepped together
        // through stepLogits, each on its own cache: every row's logits equal the full
        // forward's at that sequence's position to 1e-4.
        @Test(arguments: ["T", "M", "TMMT", "T+gqa", "M+mlp"])
        func batchedStepsOfDifferentLengthsMatchFullForward(_ which: String) throws {
            let pattern = String(which.prefix(while: { $0 != "+" }))
            let config = tinyConfig(pattern, kvHeads: which.hasSuffix("gqa") ? 1 : 2, mlp: which.hasSuffix("mlp"))
            let model = try GPT(config: config, parameters: perturbedParameters(config, seed: 8))
            let prompts = [3, 5, 8], steps = 4, total = 12, v = config.vocabSize
            let ids = tokens([prompts.count, total], below: 23, seed: 10)
            GradMode.withoutGradients {
                let full = model.logits(ids).doubles
                let caches = prompts.enumerated().map { i, n in
                    let cache = DecodeCache(config: config, batch: 1, capacity: 2)
                    _ = model.logits(IndexTensor(shape: [1, n], values: Array(ids.values[(i * total)..<(i * total + n)])), cache: cache)
                    return cache
                }
                for s in 0..<steps {
                    let next = prompts.enumerated().map { i, n in ids.values[i * total + n + s] }
                    let got = model.stepLogits(next, caches: caches).doubles
                    var worst = 0.0
                    for (i, n) in prompts.enumerated() { for j in 0..<v {
                        worst = max(worst, abs(got[i * v + j] - full[(i * total + n + s) * v + j]))
                    } }
                    #expect(worst < 1e-4, "\(which): step \(s) differs by \(worst)")
                }
                #expect(caches.map(\.length) == prompts.map { $0 + steps })
            }
        }

        // Inference in bf16 with every matrix packed once (what chat and the server do): the
        // logits, full and decoded step by step, are the bits of the same model multiplying
        // unpacked weights, on each bf16 kernel that packs; the packed copies leave fp32
        // products alone, and after they are dropped bf16 gives the same bits again.
        @Test(arguments: BF16Kernel.allCases.filter { $0.available && $0.packs })
        func packedWeightsGiveTheUnpackedModelsLogits(_ kernel: BF16Kernel) throws {
            let config = tinyConfig("TMMT", kvHeads: 1, mlp: true)
            let model = try GPT(config: config, parameters: perturbedParameters(config, seed: 12))
            let ids = tokens([2, 7], below: 23, seed: 13)
            func run() -> (bf16: [Float], steps: [Float], fp32: [Float]) {
                GradMode.withoutGradients {
                    let (full, steps) = Precision.with(.bfloat16, kernel: kernel) { () -> ([Float], [Float]) in
                        let cache = DecodeCache(config: config, batch: 1, capacity: 7)
                        let steps = (0..<7).flatMap { t in model.logits(IndexTensor(shape: [1, 1], values: [ids.values[t]]), cache: cache).floats }
                        return (model.logits(ids).floats, steps)
                    }
                    return (full, steps, model.logits(ids).floats)
                }
            }
            let plain = run()
            model.packWeightsBF16()
            // Every matrix a product reads is packed; the embedding (looked up) and the vectors are not.
            for p in model.parameters.parameters {
                let s = p.tensor.shape
                let expected = s.count == 2 && p.name != "transformer.wte.weight" ? (s[0] + 31) / 32 * 32 * ((s[1] + 31) / 32 * 32) * 2 : 0
                #expect(p.tensor.packedBF16Bytes == expected, "\(p.name) \(s)")
            }
            let packed = run()
            #expect(packed.bf16 == plain.bf16, "\(kernel): full forward")
            #expect(packed.steps == plain.steps, "\(kernel): decoding")
            #expect(packed.fp32 == plain.fp32, "\(kernel): fp32 with packed copies attached")
            // bf16 really rounds here (the comparison above is not of fp32 products).
            #expect(plain.bf16 != plain.fp32)
            model.dropPackedWeights()
            #expect(model.parameters.parameters.allSatisfy { $0.tensor.packedBF16Bytes == 0 })
            #expect(run().bf16 == plain.bf16, "\(kernel): after the copies are dropped")
        }

        @Test func cacheBytesPerSequence() {
            let c = ModelConfig.fromDepth(12, vocabSize: 8192, sequenceLen: 2048, blockPattern: [.transformer, .mamba] + Array(repeating: .mamba, count: 10))
            // T layer: 2 · 4096 · 6 · 128 · 4 bytes; M layer: 1536 · (3 + 16) · 4 bytes.
            #expect(DecodeCache.bytesPerSequence(c, contextLength: 4096) == 2 * 4096 * 6 * 128 * 4 + 11 * 1536 * 19 * 4)
            let cache = DecodeCache(config: c, batch: 1, capacity: 4096)
            #expect(cache.byteCount == DecodeCache.bytesPerSequence(c, contextLength: 4096))
        }
    }
}

/// Stands in for weights arriving from other ranks: keeps the model's parameters aside,
/// zeroing them, and puts back a stage's when the forward pass asks for it, all of them when
/// settled.
final class HeldWeights: ArrivingWeights {
    private let parameters: [Tensor], stages: [Int], values: [[Float]]
    private(set) var asked: [Int] = [], settled = false

    init(_ model: GPT) {
        parameters = model.parameters.parameters.map(\.tensor)
        stages = model.parameterStages
        values = parameters.map(\.floats)
        for t in parameters { t.data(Float.self).update(repeating: 0, count: t.count) }
    }

    private func restore(_ keep: (Int) -> Bool) {
        for (i, t) in parameters.enumerated() where keep(stages[i]) {
            values[i].withUnsafeBufferPointer { t.data(Float.self).update(from: $0.baseAddress!, count: t.count) }
        }
    }

    func awaitStage(_ stage: Int) { asked.append(stage); restore { $0 == stage } }
    func settle() { settled = true; restore { _ in true } }
}

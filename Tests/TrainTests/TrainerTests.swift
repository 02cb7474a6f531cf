// The training step: a tiny hybrid learns a repeating sequence; clipping equals scaling the
// gradients first; NaN stops it with a name.
import Foundation
import Testing
import Tensor
import Blocks
import Train

@Suite struct TrainerTests {
    @Test func tinyHybridLearnsARepeatingSequence() throws {
        let config = ModelConfig(sequenceLen: 16, vocabSize: 16, nLayer: 2, nHead: 2, nKVHead: 2, nEmbd: 32,
                                 blockPattern: [.transformer, .mamba])
        let trainer = Trainer(model: try GPT(config: config, seed: 3))
        // 0 1 2 ... 15 0 1 2 ...: each next token is determined by the current one.
        let seq = (0..<(4 * 17)).map { Int32($0 % 16) }
        let x = IndexTensor(shape: [4, 16], values: (0..<4).flatMap { b in seq[(b * 17)..<(b * 17 + 16)] })
        let y = IndexTensor(shape: [4, 16], values: (0..<4).flatMap { b in seq[(b * 17 + 1)..<(b * 17 + 17)] })
        let first = try trainer.step([(x, y)], totalSteps: 60)
        var last = first
        for _ in 1..<60 { last = try trainer.step([(x, y)], totalSteps: 60) }
        #expect(abs(first - log(16)) < 0.01, "a fresh model starts at ln V: \(first)")
        #expect(last < 0.5, "loss after 60 steps: \(last) (from \(first))")
    }

    @Test func nonFiniteLossNamesTheStep() throws {
        let config = ModelConfig(sequenceLen: 8, vocabSize: 10, nLayer: 1, nHead: 1, nKVHead: 1, nEmbd: 16, blockPattern: [.mamba])
        let model = try GPT(config: config, seed: 1)
        model.parameters["transformer.wte.weight"].data(Float.self)[0] = .nan
        let trainer = Trainer(model: model)
        let x = IndexTensor(shape: [1, 4], values: [0, 1, 2, 3]), y = IndexTensor(shape: [1, 4], values: [1, 2, 3, 4])
        #expect(throws: NonFiniteError.self) { try trainer.step([(x, y)], totalSteps: 10) }
        do { try trainer.step([(x, y)], totalSteps: 10) } catch let e as NonFiniteError {
            #expect(e.description == "step 0: loss is NaN or Inf; stopping (the last checkpoint is kept)")
        }
    }

    /// The optimisers read the gradients times the clipping factor: two steps must equal two
    /// whose gradients were scaled in place first (bit for bit, Muon and AdamW both). Adam's
    /// m/√v and Muon's orthogonalisation make an update nearly blind to a gradient's scale,
    /// so the test also checks that the unclipped run ends elsewhere: an optimiser that
    /// ignored the factor would then fail the bit-for-bit comparison.
    @Test func clippedStepEqualsScalingGradientsFirst() throws {
        let config = ModelConfig(sequenceLen: 8, vocabSize: 16, nLayer: 2, nHead: 2, nKVHead: 2, nEmbd: 32,
                                 blockPattern: [.transformer, .mamba])
        func tokens(_ mul: Int, _ add: Int) -> IndexTensor {
            IndexTensor(shape: [2, 8], values: (0..<16).map { i -> Int32 in Int32((i * mul + add) % 16) })
        }
        let batches = [(tokens(5, 0), tokens(3, 0)), (tokens(5, 1), tokens(3, 7))]
        let clip = 0.05
        let fused = Trainer(model: try GPT(config: config, seed: 4), settings: clipping(clip))
        var factors: [Float] = []
        for (x, y) in batches {
            try fused.step([(x, y)], totalSteps: 10)
            factors.append(fused.lastClipFactor)
        }
        #expect(factors.allSatisfy { $0 < 0.5 }, "the test needs clipping to happen: factors \(factors)")

        let model = try GPT(config: config, seed: 4)
        let manual = Trainer(model: model, settings: clipping(0))
        let params = model.parameters.parameters
        for (step, (x, y)) in batches.enumerated() {
            for p in params { p.tensor.zeroGrad() }
            model.loss(x, targets: y).backward()
            let grads = params.compactMap { $0.tensor.grad }
            let norm = grads.reduce(0.0) { $0 + squaredNorm($1.data(Float.self), count: $1.count) }.squareRoot()
            let factor = Float(clip / norm)
            #expect(factor == factors[step])
            for g in grads {
                let gp = g.data(Float.self)
                for i in 0..<g.count { gp[i] *= factor }
            }
            let lrm = Schedule.lrMultiplier(step: step, total: 10, warmupRatio: manual.settings.warmupRatio,
                                            warmdownRatio: manual.settings.warmdownRatio,
                                            finalFraction: manual.settings.finalLRFraction)
            manual.muon.update(lrMultiplier: lrm, momentum: Schedule.muonMomentum(step: step))
            manual.adam.update(lrMultiplier: lrm)
        }

        let unclipped = Trainer(model: try GPT(config: config, seed: 4), settings: clipping(0))
        for (x, y) in batches { try unclipped.step([(x, y)], totalSteps: 10) }
        var differFromUnclipped = 0
        for (p, q) in zip(params, fused.model.parameters.parameters) {
            let a = p.tensor.data(Float.self), b = q.tensor.data(Float.self)
            let mismatches = (0..<p.tensor.count).filter { a[$0].bitPattern != b[$0].bitPattern }.count
            #expect(mismatches == 0, "\(p.name): \(mismatches) of \(p.tensor.count) elements differ")
            let u = unclipped.model.parameters[p.name].data(Float.self)
            if (0..<p.tensor.count).contains(where: { u[$0] != b[$0] }) { differFromUnclipped += 1 }
        }
        #expect(differFromUnclipped >= 3, "clipping changed only \(differFromUnclipped) of \(params.count) tensors")
    }

    /// Clipping only ever scales down: a gradient norm below grad_clip leaves the factor at
    /// exactly 1 (Adam and Muon barely see a gradient's scale, so a factor above 1 would pass
    /// every training check but this one), and one just above it gives clip ÷ norm.
    @Test func aNormBelowTheClipIsNotScaledUp() throws {
        let config = ModelConfig(sequenceLen: 8, vocabSize: 16, nLayer: 2, nHead: 2, nKVHead: 2, nEmbd: 32,
                                 blockPattern: [.transformer, .mamba])
        let x = IndexTensor(shape: [1, 8], values: (0..<8).map { Int32($0) }), y = IndexTensor(shape: [1, 8], values: (0..<8).map { Int32(($0 + 3) % 16) })
        // The first step's gradient norm, from a trainer that does not clip.
        let model = try GPT(config: config, seed: 9)
        model.loss(x, targets: y).backward()
        let norm = model.parameters.parameters.compactMap { $0.tensor.grad }
            .reduce(0.0) { $0 + squaredNorm($1.data(Float.self), count: $1.count) }.squareRoot()
        for clip in [norm * 1.5, norm * 1000] {
            let loose = Trainer(model: try GPT(config: config, seed: 9), settings: clipping(clip))
            try loose.step([(x, y)], totalSteps: 10)
            #expect(loose.lastClipFactor == 1, "grad_clip \(clip) above the norm \(norm) gave factor \(loose.lastClipFactor)")
        }
        let tight = Trainer(model: try GPT(config: config, seed: 9), settings: clipping(norm / 2))
        try tight.step([(x, y)], totalSteps: 10)
        #expect(abs(Double(tight.lastClipFactor) - 0.5) < 1e-5, "half the norm gave factor \(tight.lastClipFactor)")
    }

    /// optim_S.safetensors holds every optimiser buffer and the AdamW step: saved after two
    /// steps it loads into another trainer value for value; a fresh trainer's state loads as
    /// step 0 (a run saved before its first step); a file that is not this model's state is
    /// refused naming the file, the tensor where one is at fault, and what is wrong.
    @Test func theOptimiserStateLoadsBackAndBadFilesAreNamed() throws {
        let config = ModelConfig(sequenceLen: 8, vocabSize: 16, nLayer: 2, nHead: 2, nKVHead: 2, nEmbd: 32,
                                 blockPattern: [.transformer, .mamba])
        let x = IndexTensor(shape: [1, 8], values: (0..<8).map { Int32($0) }), y = IndexTensor(shape: [1, 8], values: (0..<8).map { Int32(($0 + 5) % 16) })
        func values(_ tensors: [Tensor]) -> [[Double]] { tensors.map(\.doubles) }
        let trained = Trainer(model: try GPT(config: config, seed: 5))
        for _ in 0..<2 { try trained.step([(x, y)], totalSteps: 10) }
        let path = scratchPath("optim.safetensors")
        try OptimizerState.save(trained, to: path)
        let loaded = Trainer(model: try GPT(config: config, seed: 6))
        try OptimizerState.load(into: loaded, from: path)
        #expect(loaded.adam.step == 2)
        #expect(values(loaded.muon.buffers) == values(trained.muon.buffers))
        #expect(values(loaded.adam.m) == values(trained.adam.m) && values(loaded.adam.v) == values(trained.adam.v))
        #expect(values(trained.adam.v).joined().contains { $0 > 0 } && values(trained.muon.buffers).joined().contains { $0 != 0 })

        let fresh = scratchPath("fresh.safetensors")
        try OptimizerState.save(Trainer(model: try GPT(config: config, seed: 7)), to: fresh)
        try OptimizerState.load(into: loaded, from: fresh)
        #expect(loaded.adam.step == 0 && values(loaded.adam.v).joined().allSatisfy { $0 == 0 })

        let (tensors, metadata) = try Safetensors.read(path)
        #expect(metadata == ["adamw_step": "2"])
        let bad = scratchPath("bad.safetensors")
        func refused(_ tensors: [(String, Tensor)], _ metadata: [String: String], _ expected: TensorFileError) throws {
            try Safetensors.write(tensors, metadata: metadata, to: bad)
            #expect(throws: expected) { try OptimizerState.load(into: Trainer(model: try GPT(config: config, seed: 5)), from: bad) }
        }
        let notState = TensorFileError(path: bad, "no adamw_step (a count of 0 or more) in the metadata: not an optimiser state file")
        try refused(tensors, ["adamw_step": "-1"], notState)
        try refused(tensors, ["adamw_step": "two"], notState)
        try refused(tensors, [:], notState)
        let (first, firstTensor) = tensors[0]
        try refused(Array(tensors.dropFirst()), metadata, TensorFileError(path: bad, tensor: first, "missing"))
        try refused(tensors + [("extra", Tensor(zeros: [2]))], metadata,
                    TensorFileError(path: bad, "\(tensors.count + 1) tensors, the model's optimisers have \(tensors.count)"))
        try refused([(first, Tensor(zeros: [1]))] + tensors.dropFirst(), metadata,
                    TensorFileError(path: bad, tensor: first, "shape [1] float32, expected \(firstTensor.shape) float32"))
        let broken = firstTensor.copy()
        broken.data(Float.self)[3] = .infinity
        try refused([(first, broken)] + tensors.dropFirst(), metadata,
                    TensorFileError(path: bad, tensor: first, "element 3 is not finite (NaN or Inf)"))
    }
}

/// The default settings with the gradient norm clipped to `clip` (0: not clipped).
func clipping(_ clip: Double) -> OptimizerSettings {
    var s = OptimizerSettings()
    s.gradClip = clip
    return s
}

// The model: token embedding, a stack of Transformer and Mamba layers chosen by
// block_pattern, final norm, softcapped lm_head, and the loss (SPEC §1.2).
import Tensor

/// Logits are softcapped to ±15 (nanochat): logits = 15 · tanh(z / 15).
public let logitSoftcap = 15.0

public struct ModelLoadError: UserFacingError {
    public let message: String
    public var description: String { message }
}

/// Parameters another process is still writing: in a data-parallel step across hosts the
/// owners' updated weights arrive while the next forward pass begins, and the forward pass
/// waits for each stage's parameters just before it reads them.
public protocol ArrivingWeights: AnyObject {
    /// Returns once the parameters the forward pass reads at `stage` are in place (stages:
    /// `GPT.parameterStages`).
    func awaitStage(_ stage: Int)
    /// Returns once every transfer is over: every parameter in place, and this process's own
    /// parameters sent (it may then write them).
    func settle()
}

public final class GPT {
    public let config: ModelConfig
    /// Every parameter by name, in checkpoint order (what the optimisers and checkpoints see).
    public let parameters: ParameterSet
    /// The same tensors as typed fields (what the forward pass reads).
    public let weights: ModelWeights
    private var rotaryTable: RotaryTable
    /// Weights still arriving (nil: all in place). The forward pass waits for each stage's;
    /// whatever reads or writes the parameters otherwise calls `settleWeights()` first.
    public var arriving: (any ArrivingWeights)?

    /// For each parameter (in `parameters` order) the stage of the forward pass that first
    /// reads it: 0 the embedding, 1 + i layer i, `layers + 1` the head.
    public var parameterStages: [Int] {
        var stage: [ObjectIdentifier: Int] = [ObjectIdentifier(weights.embedding): 0,
                                              ObjectIdentifier(weights.head): weights.layers.count + 1]
        for (i, layer) in weights.layers.enumerated() {
            for t in layer.tensors { stage[ObjectIdentifier(t)] = i + 1 }
        }
        return parameters.parameters.map { stage[ObjectIdentifier($0.tensor)] ?? 0 }
    }

    /// Waits for every arriving parameter and transfer (see `arriving`).
    public func settleWeights() {
        guard let a = arriving else { return }
        arriving = nil
        a.settle()
    }

    /// A model over existing parameters; their names and shapes must match the config's.
    public init(config: ModelConfig, parameters: ParameterSet) throws {
        try config.validate()
        var taken = Set<String>()
        weights = try ModelWeights(config) { spec in
            guard parameters.contains(spec.name) else {
                throw ModelLoadError(message: "missing parameter \(spec.name) (shape \(spec.shape))")
            }
            let t = parameters[spec.name]
            guard t.shape == spec.shape else {
                throw ModelLoadError(message: "parameter \(spec.name) has shape \(t.shape), the config needs \(spec.shape)")
            }
            taken.insert(spec.name)
            return t
        }
        if let extra = parameters.parameters.first(where: { !taken.contains($0.name) }) {
            throw ModelLoadError(message: "parameter \(extra.name) is not part of this config's model")
        }
        self.config = config
        self.parameters = parameters
        rotaryTable = RotaryTable(headDim: config.hasTransformer ? config.headDim : 2, maxPositions: config.sequenceLen)
    }

    /// A freshly initialised model (SPEC §1.3).
    public convenience init(config: ModelConfig, seed: UInt64, dtype: DType = .float32) throws {
        try config.validate()
        try self.init(config: config, parameters: .initialized(config, seed: seed, dtype: dtype))
    }

    private func rotary(upTo positions: Int) -> RotaryTable {
        if positions > rotaryTable.maxPositions {
            rotaryTable = RotaryTable(headDim: rotaryTable.headDim, maxPositions: max(positions, 2 * rotaryTable.maxPositions))
        }
        return rotaryTable
    }

    /// For inference in bf16: every matrix the forward multiplies (all 2-D parameters but the
    /// embedding, which is looked up) gets a bf16 copy packed once, so decoding reads half the
    /// bytes per token and no product packs a weight again. Products use it only in bf16
    /// precision and without gradients; the fp32 weights stay as they are. Do not train the
    /// model while the copies are attached: `dropPackedWeights()` removes them.
    public func packWeightsBF16() {
        settleWeights()
        for p in parameters.parameters where p.tensor.rank == 2 && p.name != "transformer.wte.weight" {
            p.tensor.packBF16()
        }
    }

    /// Removes the bf16 copies `packWeightsBF16` attached.
    public func dropPackedWeights() {
        for p in parameters.parameters { p.tensor.unpackBF16() }
    }

    /// rmsnorm of the last layer's output, (B, T, C). With a cache, idx holds the next T
    /// tokens after the cache's `length` (a prefill when empty, else typically T = 1).
    public func hidden(_ idx: IndexTensor, cache: DecodeCache? = nil) -> Tensor {
        if let cache {
            precondition(cache.batch == idx.shape[0], "cache is for batch \(cache.batch), ids have \(idx.shape[0])")
        }
        return hidden(idx, caches: cache.map { [$0] } ?? [])
    }

    /// The same over several caches at once: cache j holds the past of the next
    /// `caches[j].batch` rows of idx, each at its own length, so sequences of different
    /// lengths decode together in one batch (the weights' products see every row; attention
    /// and the Mamba states stay per cache). With more than one cache every Mamba layer's
    /// state must be primed and T = 1.
    func hidden(_ idx: IndexTensor, caches: [DecodeCache]) -> Tensor {
        precondition(idx.shape.count == 2, "token ids must be (B, T), got \(idx.shape)")
        precondition(caches.isEmpty || caches.reduce(0, { $0 + $1.batch }) == idx.shape[0],
                     "caches hold \(caches.map(\.batch)) rows, ids have \(idx.shape[0])")
        let offsets = caches.map(\.length)
        let rope = rotary(upTo: (offsets.max() ?? 0) + idx.shape[1])
        arriving?.awaitStage(0)
        var x = rmsNorm(embedding(weights.embedding, idx))
        for (i, layer) in weights.layers.enumerated() {
            arriving?.awaitStage(i + 1)
            switch layer {
            case .transformer(let attention, let mlp):
                let past = zip(caches, offsets).compactMap { c, o in c.keysAndValues(layer: i).map { (cache: $0, offset: o) } }
                x = transformerBlock(x, attention, mlp, config: config, rope: rope, past: past)
            case .mamba(let mixer, let mlp):
                let states = caches.compactMap { $0.mambaState(layer: i) }
                for (state, offset) in zip(states, offsets) {
                    precondition(state.primed == (offset > 0) && (offset == 0 || idx.shape[1] == 1)
                                 && (states.count == 1 || offset > 0),
                                 "Mamba layers decode one token at a time after a prefill from an empty cache")
                }
                x = mambaBlock(x, mixer, mlp, config: config, states: states)
            }
        }
        for cache in caches { cache.length += idx.shape[1] }
        return rmsNorm(x)
    }

    /// Softcapped logits (B, V) of one next token per cache, each cache (of batch 1) at its
    /// own length: the batched decode step of a server's requests.
    public func stepLogits(_ tokens: [Int32], caches: [DecodeCache]) -> Tensor {
        precondition(tokens.count == caches.count && caches.allSatisfy { $0.batch == 1 },
                     "one token per single-sequence cache")
        let h = hidden(IndexTensor(shape: [tokens.count, 1], values: tokens), caches: caches)
        arriving?.awaitStage(weights.layers.count + 1)
        return softcap(linear(h, weights.head), logitSoftcap).reshaped([tokens.count, config.vocabSize])
    }

    /// The head's logits before the softcap, (B, T, V): what the loss and the logits share.
    func headLogits(_ idx: IndexTensor, cache: DecodeCache? = nil) -> Tensor {
        let h = hidden(idx, cache: cache)
        arriving?.awaitStage(weights.layers.count + 1)
        return linear(h, weights.head)
    }

    /// Softcapped logits (B, T, V).
    public func logits(_ idx: IndexTensor, cache: DecodeCache? = nil) -> Tensor {
        softcap(headLogits(idx, cache: cache), logitSoftcap)
    }

    /// Mean cross entropy of the softcapped logits against targets (B, T), -1 ignored.
    public func loss(_ idx: IndexTensor, targets: IndexTensor) -> Tensor {
        precondition(targets.shape == idx.shape, "targets \(targets.shape) must match ids \(idx.shape)")
        return crossEntropy(headLogits(idx), targets: targets, softcap: logitSoftcap)
    }

    /// Cross entropy of each position (B·T values, row-major), without gradients: what
    /// evaluation needs to weigh tokens by their bytes (SPEC §3.2). The same kernel as `loss`.
    public func tokenLosses(_ idx: IndexTensor, targets: IndexTensor) -> [Float] {
        precondition(targets.shape == idx.shape, "targets \(targets.shape) must match ids \(idx.shape)")
        return GradMode.withoutGradients {
            crossEntropyPerPosition(headLogits(idx), targets: targets, softcap: logitSoftcap)
        }
    }
}

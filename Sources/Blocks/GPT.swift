// The model: token embedding, a stack of Transformer and Mamba layers chosen by
// block_pattern, final norm, softcapped lm_head, and the loss (SPEC §1.2).
import Tensor

/// Logits are softcapped to ±15 (nanochat): logits = 15 · tanh(z / 15).
public let logitSoftcap = 15.0

public struct ModelLoadError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

public final class GPT {
    public let config: ModelConfig
    public let parameters: ParameterSet
    private var rotaryTable: RotaryTable

    /// A model over existing parameters; their names and shapes must match the config's.
    public init(config: ModelConfig, parameters: ParameterSet) throws {
        try config.validate()
        let specs = config.parameterSpecs
        for spec in specs {
            guard parameters.contains(spec.name) else {
                throw ModelLoadError(message: "missing parameter \(spec.name) (shape \(spec.shape))")
            }
            let t = parameters[spec.name]
            guard t.shape == spec.shape else {
                throw ModelLoadError(message: "parameter \(spec.name) has shape \(t.shape), the config needs \(spec.shape)")
            }
        }
        let expected = Set(specs.map(\.name))
        if let extra = parameters.parameters.first(where: { !expected.contains($0.name) }) {
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

    /// rmsnorm of the last layer's output, (B, T, C). With a cache, idx holds the next T
    /// tokens after the cache's `length` (a prefill when empty, else typically T = 1).
    public func hidden(_ idx: IndexTensor, cache: DecodeCache? = nil) -> Tensor {
        precondition(idx.shape.count == 2, "token ids must be (B, T), got \(idx.shape)")
        let offset = cache?.length ?? 0
        if let cache {
            precondition(cache.batch == idx.shape[0], "cache is for batch \(cache.batch), ids have \(idx.shape[0])")
        }
        let rope = rotary(upTo: offset + idx.shape[1])
        var x = rmsNorm(embedding(parameters["transformer.wte.weight"], idx))
        for (i, kind) in config.blockPattern.enumerated() {
            switch (kind, cache?.layers[i]) {
            case (.transformer, .attention(let kv)?):
                x = TransformerBlock(index: i, config: config).forward(x, parameters, rope: rope, cache: kv, offset: offset)
            case (.transformer, _):
                x = TransformerBlock(index: i, config: config).forward(x, parameters, rope: rope, cache: nil, offset: 0)
            case (.mamba, .mamba(let mc)?):
                precondition(mc.primed == (offset > 0) && (offset == 0 || idx.shape[1] == 1),
                             "Mamba layers decode one token at a time after a prefill from an empty cache")
                x = MambaBlock(index: i, config: config).forward(x, parameters, cache: mc)
            case (.mamba, _):
                x = MambaBlock(index: i, config: config).forward(x, parameters, cache: nil)
            }
        }
        cache?.length += idx.shape[1]
        return rmsNorm(x)
    }

    /// Softcapped logits (B, T, V).
    public func logits(_ idx: IndexTensor, cache: DecodeCache? = nil) -> Tensor {
        let z = linear(hidden(idx, cache: cache), parameters["lm_head.weight"])
        return scale(tanh(scale(z, 1 / logitSoftcap)), logitSoftcap)
    }

    /// Mean cross entropy of the softcapped logits against targets (B, T), -1 ignored.
    public func loss(_ idx: IndexTensor, targets: IndexTensor) -> Tensor {
        precondition(targets.shape == idx.shape, "targets \(targets.shape) must match ids \(idx.shape)")
        let z = linear(hidden(idx), parameters["lm_head.weight"])
        return crossEntropy(z, targets: targets, softcap: logitSoftcap)
    }

    /// Cross entropy of each position (B·T values, row-major), without gradients: what
    /// evaluation needs to weigh tokens by their bytes (SPEC §3.2).
    public func tokenLosses(_ idx: IndexTensor, targets: IndexTensor) -> [Float] {
        precondition(targets.shape == idx.shape, "targets \(targets.shape) must match ids \(idx.shape)")
        return GradMode.withoutGradients {
            let z = linear(hidden(idx), parameters["lm_head.weight"]).copy(dtype: .float32)
            let n = targets.values.count, v = config.vocabSize
            var losses = [Float](repeating: 0, count: n), lse = losses
            targets.values.withUnsafeBufferPointer { t in
                losses.withUnsafeMutableBufferPointer { lp in
                    lse.withUnsafeMutableBufferPointer { sp in
                        crossEntropyForward(losses: lp.baseAddress!, lse: sp.baseAddress!, logits: z.data(Float.self),
                                            targets: t.baseAddress!, rows: n, vocab: v, softcap: Float(logitSoftcap))
                    }
                }
            }
            return losses
        }
    }
}

// The model's parameters, listed explicitly under their checkpoint names (SPEC §1.4), each
// with its shape, its initialisation (SPEC §1.3) and its optimiser group (SPEC §2).
import Foundation
import Tensor

/// Which optimiser updates a parameter (SPEC §2).
public enum OptimizerGroup: String, Codable, Sendable {
    /// 2-D weights inside transformer.h: Muon at matrix_lr.
    case muonMatrix
    /// transformer.wte: AdamW at embedding_lr.
    case adamEmbedding
    /// lm_head: AdamW at unembedding_lr.
    case adamHead
    /// Mamba's non-matrix parameters (A_log, D, conv1d.*, dt_proj.bias): AdamW at mamba_lr.
    case adamMambaScalar
}

/// How a parameter starts.
public enum ParameterInit: Sendable, Equatable {
    case zeros
    case normal(std: Double)
    case uniform(bound: Double)
    /// A_log[d, n] = log(n + 1).
    case mambaALog
    case ones
    /// Inverse softplus of dt = exp(U(log 1e-3, log 1e-1)), floored at 1e-4.
    case mambaDtBias
}

/// One named parameter.
public struct ParameterSpec: Sendable, Equatable {
    public let name: String
    public let shape: [Int]
    public let group: OptimizerGroup
    public let initializer: ParameterInit
}

/// A named tensor and its optimiser group.
public struct Parameter {
    public let name: String
    public let group: OptimizerGroup
    public let tensor: Tensor

    public init(name: String, group: OptimizerGroup, tensor: Tensor) {
        self.name = name; self.group = group; self.tensor = tensor
    }
}

/// Linear init: N(0, std) with std = 1/sqrt(in) · min(1, sqrt(out/in)) for a (out, in) weight.
func linearInit(_ out: Int, _ inp: Int) -> ParameterInit {
    .normal(std: 1 / Double(inp).squareRoot() * min(1, (Double(out) / Double(inp)).squareRoot()))
}

/// The weights of one attention sub-block (SPEC §1.2): q, k, v and output projections.
public struct AttentionWeights {
    /// c_q (H·hd, C), c_k and c_v (KV·hd, C), c_proj (C, C).
    public let query, key, value, projection: Tensor
}

/// The weights of one MLP sub-block: c_fc (4C, C) and c_proj (C, 4C).
public struct MLPWeights {
    public let up, down: Tensor
}

/// The weights of one Mamba mixer (SPEC §1.2).
public struct MixerWeights {
    /// in_proj (2Di, C), x_proj (R+2N, Di), dt_proj.weight (Di, R), out_proj (C, Di).
    public let inProj, xProj, dtProj, outProj: Tensor
    /// conv1d.weight (Di, 1, K) and conv1d.bias (Di).
    public let convWeight, convBias: Tensor
    /// dt_proj.bias (Di), A_log (Di, N), D (Di).
    public let dtBias, aLog, d: Tensor
}

/// One layer's weights, by kind.
public enum LayerWeights {
    case transformer(attention: AttentionWeights, mlp: MLPWeights)
    /// The MLP is present when `mamba_use_mlp` is set.
    case mamba(mixer: MixerWeights, mlp: MLPWeights?)

    /// Every tensor of the layer.
    var tensors: [Tensor] {
        switch self {
        case .transformer(let a, let m):
            return [a.query, a.key, a.value, a.projection, m.up, m.down]
        case .mamba(let x, let m):
            return [x.inProj, x.xProj, x.dtProj, x.outProj, x.convWeight, x.convBias, x.dtBias, x.aLog, x.d]
                + (m.map { [$0.up, $0.down] } ?? [])
        }
    }
}

/// The model's weights as typed fields, built once from the parameter list: the forward
/// pass reads these, never a name.
public struct ModelWeights {
    /// transformer.wte.weight (V, C) and lm_head.weight (V, C).
    public let embedding, head: Tensor
    public let layers: [LayerWeights]

    /// The only listing of the model's parameters. Walks them in checkpoint order (wte, each
    /// layer's, lm_head), asking `take` for the tensor of each spec; a throwing `take` stops
    /// the walk with its error.
    init(_ config: ModelConfig, take: (ParameterSpec) throws -> Tensor) rethrows {
        let c = config.nEmbd, hd = config.headDim, di = config.mambaInner, r = config.dtRank
        let n = config.mambaDState, k = config.mambaDConv
        func matrix(_ name: String, _ out: Int, _ inp: Int, zero: Bool = false) throws -> Tensor {
            try take(ParameterSpec(name: name, shape: [out, inp], group: .muonMatrix,
                                   initializer: zero ? .zeros : linearInit(out, inp)))
        }
        func mambaScalar(_ name: String, _ shape: [Int], _ initializer: ParameterInit) throws -> Tensor {
            try take(ParameterSpec(name: name, shape: shape, group: .adamMambaScalar, initializer: initializer))
        }
        func mlp(_ p: String) throws -> MLPWeights {
            MLPWeights(up: try matrix("\(p).mlp.c_fc.weight", 4 * c, c),
                       down: try matrix("\(p).mlp.c_proj.weight", c, 4 * c, zero: true))
        }
        embedding = try take(ParameterSpec(name: "transformer.wte.weight", shape: [config.vocabSize, c],
                                           group: .adamEmbedding, initializer: .normal(std: 1)))
        var layers: [LayerWeights] = []
        for (i, kind) in config.blockPattern.enumerated() {
            let p = "transformer.h.\(i)"
            switch kind {
            case .transformer:
                let a = "\(p).attn"
                let attention = AttentionWeights(
                    query: try matrix("\(a).c_q.weight", config.nHead * hd, c),
                    key: try matrix("\(a).c_k.weight", config.nKVHead * hd, c),
                    value: try matrix("\(a).c_v.weight", config.nKVHead * hd, c),
                    projection: try matrix("\(a).c_proj.weight", c, c, zero: true))
                layers.append(.transformer(attention: attention, mlp: try mlp(p)))
            case .mamba:
                let m = "\(p).mixer", convBound = 1 / Double(k).squareRoot()
                let inProj = try matrix("\(m).in_proj.weight", 2 * di, c)
                let convWeight = try mambaScalar("\(m).conv1d.weight", [di, 1, k], .uniform(bound: convBound))
                let convBias = try mambaScalar("\(m).conv1d.bias", [di], .uniform(bound: convBound))
                let xProj = try matrix("\(m).x_proj.weight", r + 2 * n, di)
                let dtProj = try take(ParameterSpec(name: "\(m).dt_proj.weight", shape: [di, r], group: .muonMatrix,
                                                    initializer: .uniform(bound: 1 / Double(r).squareRoot())))
                let dtBias = try mambaScalar("\(m).dt_proj.bias", [di], .mambaDtBias)
                let aLog = try mambaScalar("\(m).A_log", [di, n], .mambaALog)
                let d = try mambaScalar("\(m).D", [di], .ones)
                let outProj = try matrix("\(m).out_proj.weight", c, di, zero: true)
                let mixer = MixerWeights(inProj: inProj, xProj: xProj, dtProj: dtProj, outProj: outProj,
                                         convWeight: convWeight, convBias: convBias, dtBias: dtBias, aLog: aLog, d: d)
                layers.append(.mamba(mixer: mixer, mlp: config.mambaUseMLP ? try mlp(p) : nil))
            }
        }
        self.layers = layers
        head = try take(ParameterSpec(name: "lm_head.weight", shape: [config.vocabSize, c], group: .adamHead,
                                      initializer: .zeros))
    }
}

extension ModelConfig {
    /// Every parameter in checkpoint order: wte, then each layer's, then lm_head (the walk
    /// of `ModelWeights`, recording each spec).
    public var parameterSpecs: [ParameterSpec] {
        var specs: [ParameterSpec] = []
        let placeholder = Tensor(zeros: [0])
        _ = ModelWeights(self) { spec in
            specs.append(spec)
            return placeholder
        }
        return specs
    }

    /// Number of parameters.
    public var parameterCount: Int { parameterSpecs.reduce(0) { $0 + $1.shape.reduce(1, *) } }

    /// Training FLOPs per token, as nanochat's `estimate_flops`: 6 per weight of every
    /// matrix product (all parameters but the embedding, whose lookup is free), plus
    /// 12·heads·head_dim·sequence_len per attention layer for the score and value products.
    /// The selective scan and the convolution are not matrix products and are not counted,
    /// so MFU compares the matmul work with the sgemm peak.
    public var flopsPerToken: Double {
        let embedding = vocabSize * nEmbd
        let attentionLayers = blockPattern.filter { $0 == .transformer }.count
        return 6 * Double(parameterCount - embedding) + 12 * Double(attentionLayers * nHead * headDim * sequenceLen)
    }
}

/// The model's parameters by name, in checkpoint order.
public final class ParameterSet {
    public let parameters: [Parameter]
    private let index: [String: Int]

    public init(_ parameters: [Parameter]) {
        self.parameters = parameters
        var index: [String: Int] = [:]
        for (i, p) in parameters.enumerated() { index[p.name] = i }
        self.index = index
    }

    /// The tensor named `name`; the name must exist (the model asks only for its own).
    public subscript(name: String) -> Tensor {
        guard let i = index[name] else { preconditionFailure("no parameter named \(name)") }
        return parameters[i].tensor
    }

    public func contains(_ name: String) -> Bool { index[name] != nil }
    public var tensors: [Tensor] { parameters.map(\.tensor) }

    /// Fresh parameters for `config`, drawn in checkpoint order from one generator seeded
    /// with `seed`, so the same seed gives the same bytes.
    public static func initialized(_ config: ModelConfig, seed: UInt64, dtype: DType = .float32) -> ParameterSet {
        var g = SeededGenerator(seed: seed)
        let params = config.parameterSpecs.map { spec -> Parameter in
            let count = spec.shape.reduce(1, *)
            let values: [Double]
            switch spec.initializer {
            case .zeros: values = [Double](repeating: 0, count: count)
            case .ones: values = [Double](repeating: 1, count: count)
            case .normal(let std): values = (0..<count).map { _ in std * g.nextNormal() }
            case .uniform(let bound): values = (0..<count).map { _ in bound * (2 * g.nextUnit() - 1) }
            case .mambaALog:
                let n = spec.shape[1]
                values = (0..<count).map { Foundation.log(Double($0 % n + 1)) }
            case .mambaDtBias:
                values = (0..<count).map { _ in
                    let dt = max(1e-4, Foundation.exp(Foundation.log(1e-3) + (Foundation.log(1e-1) - Foundation.log(1e-3)) * g.nextUnit()))
                    return dt + Foundation.log(-Foundation.expm1(-dt))   // softplus⁻¹(dt)
                }
            }
            let t = Tensor(shape: spec.shape, scalars: values, dtype: dtype, requiresGrad: true)
            t.name = spec.name
            return Parameter(name: spec.name, group: spec.group, tensor: t)
        }
        return ParameterSet(params)
    }

    /// The same names and groups over other tensors (e.g. gradcheck's Float64 copies).
    public func replacingTensors(_ tensors: [Tensor]) -> ParameterSet {
        precondition(tensors.count == parameters.count, "need \(parameters.count) tensors, got \(tensors.count)")
        return ParameterSet(zip(parameters, tensors).map { Parameter(name: $0.name, group: $0.group, tensor: $1) })
    }
}

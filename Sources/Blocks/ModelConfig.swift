// The model's configuration (SPEC §1.1, §3.4 `model_config`) and its validation.
//
// Glossary: B batch, T time, C = n_embd, H = n_head, KV = n_kv_head, hd = C / H,
// V vocab, Di = expand·C (Mamba inner width), N = d_state, R = ⌈C/16⌉ (dt rank),
// K = d_conv.
import Foundation
import Tensor

/// What a layer is.
public enum BlockKind: String, Codable, Sendable, Equatable {
    case transformer = "T"
    case mamba = "M"

    /// The spellings a config may use, any case.
    public static let spellings = "\"T\", \"transformer\", \"M\", \"mamba\" (any case)"

    /// Parses one `block_pattern` entry; nil for an unknown spelling.
    public init?(spelling: String) {
        switch spelling.lowercased() {
        case "t", "transformer": self = .transformer
        case "m", "mamba": self = .mamba
        default: return nil
        }
    }
}

/// A configuration error: the `model_config` key at fault, and a message naming it (and the
/// entry, for block_pattern).
public struct ModelConfigError: UserFacingError, Equatable {
    public let key: String
    public let message: String
    public init(key: String, _ message: String) { self.key = key; self.message = message }
    public var description: String { message }
}

/// Mamba's sizes when a config or a checkpoint leaves them out (SPEC §1.1).
public enum MambaDefaults {
    public static let dState = 16, dConv = 4, expand = 2
    public static let useMLP = false
}

/// Every key of SPEC §3.4's `model_config`.
public struct ModelConfig: Codable, Equatable, Sendable {
    public var sequenceLen: Int
    public var vocabSize: Int
    public var nLayer: Int
    public var nHead: Int
    public var nKVHead: Int
    public var nEmbd: Int
    public var blockPattern: [BlockKind]
    public var mambaDState: Int
    public var mambaDConv: Int
    public var mambaExpand: Int
    public var mambaUseMLP: Bool

    enum CodingKeys: String, CodingKey {
        case sequenceLen = "sequence_len", vocabSize = "vocab_size", nLayer = "n_layer", nHead = "n_head"
        case nKVHead = "n_kv_head", nEmbd = "n_embd", blockPattern = "block_pattern"
        case mambaDState = "mamba_d_state", mambaDConv = "mamba_d_conv", mambaExpand = "mamba_expand"
        case mambaUseMLP = "mamba_use_mlp"
    }

    /// Sizes from `depth` as nanochat's base_train: C = 64·depth, H = ⌈C/128⌉, KV = H.
    /// `blockPattern` nil means all Transformer.
    public static func fromDepth(
        _ depth: Int, vocabSize: Int, sequenceLen: Int, blockPattern: [BlockKind]? = nil,
        mambaDState: Int = MambaDefaults.dState, mambaDConv: Int = MambaDefaults.dConv,
        mambaExpand: Int = MambaDefaults.expand, mambaUseMLP: Bool = MambaDefaults.useMLP
    ) -> ModelConfig {
        let c = depth * 64, h = max(1, (c + 127) / 128)
        return ModelConfig(sequenceLen: sequenceLen, vocabSize: vocabSize, nLayer: depth, nHead: h, nKVHead: h, nEmbd: c,
                           blockPattern: blockPattern ?? Array(repeating: .transformer, count: depth),
                           mambaDState: mambaDState, mambaDConv: mambaDConv, mambaExpand: mambaExpand,
                           mambaUseMLP: mambaUseMLP)
    }

    public init(sequenceLen: Int, vocabSize: Int, nLayer: Int, nHead: Int, nKVHead: Int, nEmbd: Int,
                blockPattern: [BlockKind], mambaDState: Int = MambaDefaults.dState, mambaDConv: Int = MambaDefaults.dConv,
                mambaExpand: Int = MambaDefaults.expand, mambaUseMLP: Bool = MambaDefaults.useMLP) {
        self.sequenceLen = sequenceLen; self.vocabSize = vocabSize; self.nLayer = nLayer; self.nHead = nHead
        self.nKVHead = nKVHead; self.nEmbd = nEmbd; self.blockPattern = blockPattern
        self.mambaDState = mambaDState; self.mambaDConv = mambaDConv; self.mambaExpand = mambaExpand
        self.mambaUseMLP = mambaUseMLP
    }

    /// Decodes a checkpoint's model_config. A missing or null `block_pattern` means all
    /// Transformer (checkpoints from before the hybrid fork); entries are parsed with
    /// `BlockKind(spelling:)`, and the Mamba keys default as SPEC §1.1.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        sequenceLen = try c.decode(Int.self, forKey: .sequenceLen)
        vocabSize = try c.decode(Int.self, forKey: .vocabSize)
        nLayer = try c.decode(Int.self, forKey: .nLayer)
        nHead = try c.decode(Int.self, forKey: .nHead)
        nKVHead = try c.decodeIfPresent(Int.self, forKey: .nKVHead) ?? nHead
        nEmbd = try c.decode(Int.self, forKey: .nEmbd)
        mambaDState = try c.decodeIfPresent(Int.self, forKey: .mambaDState) ?? MambaDefaults.dState
        mambaDConv = try c.decodeIfPresent(Int.self, forKey: .mambaDConv) ?? MambaDefaults.dConv
        mambaExpand = try c.decodeIfPresent(Int.self, forKey: .mambaExpand) ?? MambaDefaults.expand
        mambaUseMLP = try c.decodeIfPresent(Bool.self, forKey: .mambaUseMLP) ?? MambaDefaults.useMLP
        if let raw = try c.decodeIfPresent([String].self, forKey: .blockPattern) {
            blockPattern = try ModelConfig.parsePattern(raw)
        } else {
            let deepest = ModelConfig.largest["n_layer"] ?? 4096
            guard (1...deepest).contains(nLayer) else {
                throw ModelConfigError(key: "n_layer", "n_layer must be in 1...\(deepest), got \(nLayer)")
            }
            blockPattern = Array(repeating: .transformer, count: nLayer)
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(sequenceLen, forKey: .sequenceLen); try c.encode(vocabSize, forKey: .vocabSize)
        try c.encode(nLayer, forKey: .nLayer); try c.encode(nHead, forKey: .nHead)
        try c.encode(nKVHead, forKey: .nKVHead); try c.encode(nEmbd, forKey: .nEmbd)
        try c.encode(blockPattern.map(\.rawValue), forKey: .blockPattern)
        try c.encode(mambaDState, forKey: .mambaDState); try c.encode(mambaDConv, forKey: .mambaDConv)
        try c.encode(mambaExpand, forKey: .mambaExpand); try c.encode(mambaUseMLP, forKey: .mambaUseMLP)
    }

    /// Parses `block_pattern` entries, naming the first bad one, its index and the valid
    /// spellings.
    public static func parsePattern(_ raw: [String]) throws -> [BlockKind] {
        try raw.enumerated().map { i, s in
            guard let k = BlockKind(spelling: s) else {
                throw ModelConfigError(key: "block_pattern", "block_pattern[\(i)] is \"\(s)\"; valid entries are \(BlockKind.spellings)")
            }
            return k
        }
    }

    public var headDim: Int { nEmbd / nHead }
    public var mambaInner: Int { mambaExpand * nEmbd }
    public var dtRank: Int { (nEmbd + 15) / 16 }
    public var hasMamba: Bool { blockPattern.contains(.mamba) }
    public var hasTransformer: Bool { blockPattern.contains(.transformer) }

    /// The largest value each size may take: far beyond any model a CPU trains, and small
    /// enough that no size computed from them overflows.
    public static let largest: [String: Int] = [
        "sequence_len": 1 << 24, "vocab_size": 65536, "n_layer": 4096, "n_head": 1 << 16, "n_kv_head": 1 << 16,
        "n_embd": 1 << 16, "mamba_d_state": 1024, "mamba_d_conv": 1024, "mamba_expand": 64,
    ]

    /// Bytes of the Float32 weights.
    public var weightBytes: Int { parameterCount * 4 }

    /// Checks that `bytes` (what a use of this model needs, e.g. 4 × the weights for
    /// training) fits in this machine's memory; the error says how much it needs.
    public func checkFitsInMemory(_ bytes: Double, for use: String) throws {
        let have = Double(ProcessInfo.processInfo.physicalMemory)
        guard bytes > have else { return }
        let gib = { (b: Double) in String(format: "%.1f GiB", b / 1_073_741_824) }
        throw ModelConfigError(key: "n_layer", "a model of \(parameterCount) parameters needs about \(gib(bytes)) for \(use); "
                               + "this machine has \(gib(have))")
    }

    /// Checks every constraint; the error names the key and the values.
    public func validate() throws {
        func require(_ ok: Bool, _ key: String, _ message: @autoclosure () -> String) throws {
            if !ok { throw ModelConfigError(key: key, message()) }
        }
        for (key, v) in [("sequence_len", sequenceLen), ("vocab_size", vocabSize), ("n_layer", nLayer),
                         ("n_head", nHead), ("n_kv_head", nKVHead), ("n_embd", nEmbd), ("mamba_d_state", mambaDState),
                         ("mamba_d_conv", mambaDConv), ("mamba_expand", mambaExpand)] {
            try require(v > 0, key, "\(key) must be positive, got \(v)")
            if let most = ModelConfig.largest[key] {
                try require(v <= most, key, "\(key) is \(v); the most this accepts is \(most)")
            }
        }
        try require(blockPattern.count == nLayer, "block_pattern",
                    "block_pattern has \(blockPattern.count) entries but n_layer is \(nLayer); give one entry per layer")
        try require(nEmbd % nHead == 0, "n_embd", "n_embd \(nEmbd) must be divisible by n_head \(nHead)")
        try require(nHead % nKVHead == 0, "n_kv_head", "n_kv_head \(nKVHead) must divide n_head \(nHead)")
        try require(!hasTransformer || headDim % 2 == 0, "n_head", "head dim n_embd/n_head = \(headDim) must be even for rotary")
        try require(vocabSize <= 65536, "vocab_size", "vocab_size \(vocabSize) exceeds 65536, the most a uint16 token shard can hold")
    }
}

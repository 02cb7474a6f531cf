// nanochat's own layout (its checkpoint_manager): a base directory with tokenizer/ and
// <phase>_checkpoints/<tag>/ holding model_S and meta_S.json. Our parameter names are
// nanochat's (SPEC §1.4); what differs is that nanochat pads the embedding and head rows to
// a multiple of 64 (the padded logits are cut off before the softcap) and that its files are
// torch's and pickle's, which tools/nanochat_files.py converts to and from the safetensors
// and tiktoken files written and read here.
import Blocks
import Foundation
import Tensor
import Tokenizer

public enum NanochatFormat {
    /// nanochat's checkpoint directories, by training phase (as its load_model names them).
    public enum Phase: String, CaseIterable, Sendable {
        case base, mid, sft, rl
        public var directory: String {
            switch self {
            case .base: "base_checkpoints"
            case .mid: "mid_checkpoints"
            case .sft: "chatsft_checkpoints"
            case .rl: "chatrl_checkpoints"
            }
        }
    }

    /// nanochat rounds the embedding's and head's rows up to a multiple of this.
    public static let vocabMultiple = 64
    public static func paddedVocab(_ vocabSize: Int) -> Int { (vocabSize + vocabMultiple - 1) / vocabMultiple * vocabMultiple }
    static let paddedNames: Set<String> = ["transformer.wte.weight", "lm_head.weight"]

    /// Writes BASE/tokenizer/ (tokenizer.tiktoken and tokenizer_info.json) and
    /// BASE/<phase>_checkpoints/<tag>/ with model_S.safetensors (nanochat's names and padded
    /// rows, Float32) and meta_S.json; returns the checkpoint directory. An all-Transformer
    /// model's model_config has only the keys nanochat's GPTConfig takes; other patterns add
    /// block_pattern and the Mamba keys, which the hybrid fork's GPTConfig takes.
    @discardableResult
    public static func write(model: GPT, step: Int, tokenizer: Tokenizer, phase: Phase, tag: String, valBPB: Double?,
                             to base: String) throws -> String {
        let c = model.config
        guard tokenizer.vocabSize == c.vocabSize else {
            throw ExportError("the tokenizer has \(tokenizer.vocabSize) ids but the model's vocab_size is \(c.vocabSize)")
        }
        guard !tag.isEmpty, !tag.contains("/"), tag != ".", tag != ".." else {
            throw ExportError("the model tag \"\(tag)\" is not a directory name")
        }
        let dir = "\(base)/\(phase.directory)/\(tag)"
        try AtomicFile.makeDirectories(dir)
        try tokenizer.save(to: "\(base)/tokenizer")
        let padded = paddedVocab(c.vocabSize)
        let tensors = model.parameters.parameters.map { p -> (String, Tensor) in
            let t = HuggingFaceExport.float32(p.tensor)
            guard paddedNames.contains(p.name), padded > c.vocabSize else { return (p.name, t) }
            let zeros = [Float](repeating: 0, count: (padded - c.vocabSize) * c.nEmbd)
            return (p.name, Tensor(shape: [padded, c.nEmbd], scalars: t.floats + zeros))
        }
        try Safetensors.write(tensors, metadata: ["format": "pt"], to: Checkpoint.modelPath(dir, step: step))
        var config: [String: Any] = [
            "sequence_len": c.sequenceLen, "vocab_size": c.vocabSize, "n_layer": c.nLayer,
            "n_head": c.nHead, "n_kv_head": c.nKVHead, "n_embd": c.nEmbd,
        ]
        if c.hasMamba {
            config["block_pattern"] = c.blockPattern.map(\.rawValue)
            config["mamba_d_state"] = c.mambaDState
            config["mamba_d_conv"] = c.mambaDConv
            config["mamba_expand"] = c.mambaExpand
            config["mamba_use_mlp"] = c.mambaUseMLP
        }
        var meta: [String: Any] = ["step": step, "model_config": config, "max_seq_len": c.sequenceLen]
        if let valBPB { meta["val_bpb"] = valBPB }
        let json = try JSONSerialization.data(withJSONObject: meta, options: [.prettyPrinted, .sortedKeys])
        try AtomicFile.write(json, to: Checkpoint.metaPath(dir, step: step))
        return dir
    }

    /// Parameter names of nanochat's later GPT (from its January 2026 changes on: residual and
    /// x0 lambdas, value embeddings, smear and backout), which is another architecture.
    static let laterArchitecture = ["resid_lambdas", "x0_lambdas", "value_embeds", "ve_gate", "smear_", "backout_"]

    /// Reads nanochat checkpoint `dir` at `step` (the latest when nil): meta_S.json and
    /// model_S.safetensors (tools/nanochat_files.py unpack writes it from model_S.pt), BF16 or
    /// Float32, `_orig_mod.` prefixes (torch.compile's) dropped, padded rows cut.
    public static func read(from dir: String, step: Int?) throws -> (model: GPT, step: Int, valBPB: Double?) {
        let (s, metaFile, metaData, config) = try Checkpoint.locate(in: dir, step: step, kind: "nanochat checkpoint")
        let file = Checkpoint.modelPath(dir, step: s)
        guard FileManager.default.fileExists(atPath: file) else {
            let torchFile = (file as NSString).deletingPathExtension + ".pt"
            if FileManager.default.fileExists(atPath: torchFile) {
                throw TensorFileError(path: torchFile, "is in torch's format; convert it first with `python3 tools/nanochat_files.py unpack \(dir)`")
            }
            throw TensorFileError(path: file, "missing: no weights for step \(s)")
        }
        try FolderFile.requireInside(file)
        let (raw, _) = try Safetensors.read(file)
        let known = Set(config.parameterSpecs.map(\.name))
        var tensors: [(String, Tensor)] = []
        for (stored, t) in raw {
            let name = stored.hasPrefix("_orig_mod.") ? String(stored.dropFirst("_orig_mod.".count)) : stored
            guard known.contains(name) else {
                if laterArchitecture.contains(where: { name.contains($0) }) {
                    throw TensorFileError(path: file, tensor: stored, "belongs to nanochat's later GPT (value embeddings, residual lambdas, "
                                          + "smear, backout), another architecture; the models that import are nanochat's GPT as it was "
                                          + "to commit 2c4473d of 11 January 2026 (rotary, QK norm, relu² MLP, softcap 15) and the Mamba hybrids built on it")
                }
                throw TensorFileError(path: file, tensor: stored, "not a parameter of the model in \(metaFile)")
            }
            if paddedNames.contains(name), t.shape.count == 2, t.shape[0] > config.vocabSize, t.shape[1] == config.nEmbd {
                tensors.append((name, Tensor(shape: [config.vocabSize, config.nEmbd], scalars: Array(t.floats.prefix(config.vocabSize * config.nEmbd)))))
            } else {
                tensors.append((name, t))
            }
        }
        let model = try Checkpoint.model(config: config, tensors: tensors, file: file, metaFile: metaFile)
        let object = try? JSONSerialization.jsonObject(with: metaData) as? [String: Any]
        return (model, s, object?["val_bpb"] as? Double)
    }
}

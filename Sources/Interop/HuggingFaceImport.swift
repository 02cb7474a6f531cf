// A Hugging Face model folder as our model and tokenizer: transformers' `nanochat`
// architecture (what `export --format hf` writes for an all-Transformer model, and how
// nanochat models are published), and the hybrid folders that ship our modeling file. The
// weights may be one model.safetensors or shards listed by model.safetensors.index.json, in
// Float32, BF16 or F16. What the architecture has and ours does not (another rope base,
// softcap, MLP width, tied embeddings) is refused naming the config key.
import Blocks
import Foundation
import Tensor
import Tokenizer

public enum HuggingFaceImport {
    public static func read(from dir: String) throws -> (model: GPT, tokenizer: Tokenizer) {
        let configPath = "\(dir)/config.json"
        for name in ["config.json", "tokenizer.json", "model.safetensors", "model.safetensors.index.json"] {
            try requireInside(dir, name)
        }
        guard let data = FileManager.default.contents(atPath: configPath) else {
            throw ExportError("\(configPath): missing; not a Hugging Face model folder")
        }
        guard let hf = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ExportError("\(configPath): not a JSON object")
        }
        let type = hf["model_type"] as? String ?? "missing"
        let config: ModelConfig
        let ourName: (String) -> String
        switch type {
        case "nanochat":
            config = try nanochatConfig(hf, path: configPath)
            ourName = HuggingFaceExport.nanochatName
        case "nanochat_hybrid":
            do { config = try JSONDecoder().decode(ModelConfig.self, from: data) } catch {
                throw ExportError("\(configPath): not a model config of this project: \(error)")
            }
            try checkHybridConstants(hf, path: configPath)
            ourName = { $0 }
        case "mamba":
            throw ExportError("\(configPath): a `mamba` folder cannot be imported: the export folds the norm after the embedding "
                              + "into the embedding rows, which cannot be undone; import the checkpoint it came from")
        default:
            throw ExportError("\(configPath): model_type \"\(type)\"; the folders that import are `nanochat` and `nanochat_hybrid`")
        }
        do { try config.validate() } catch { throw ExportError("\(configPath): \(error)") }

        let stored = try readWeights(dir)
        let byName = Dictionary(stored.map { ($0.name, $0.tensor) }, uniquingKeysWith: { a, _ in a })
        var tensors: [(String, Tensor)] = []
        for spec in config.parameterSpecs {
            let name = ourName(spec.name)
            guard let t = byName[name] else {
                throw ExportError("\(dir): tensor \(name) is missing (the config needs shape \(spec.shape))")
            }
            tensors.append((spec.name, t))
        }
        let wanted = Set(config.parameterSpecs.map { ourName($0.name) })
        if let extra = stored.first(where: { !wanted.contains($0.name) }) {
            throw ExportError("\(extra.file): tensor \(extra.name) is not a parameter of the model in \(configPath)")
        }
        let model = try Checkpoint.model(config: config, tensors: tensors, file: "\(dir) (weights)", metaFile: configPath)

        let tokenizerPath = "\(dir)/tokenizer.json"
        guard let tokenizerData = FileManager.default.contents(atPath: tokenizerPath) else {
            throw ExportError("\(tokenizerPath): missing")
        }
        let tokenizer = try Tokenizer.fromHuggingFace(tokenizerData, path: tokenizerPath)
        guard tokenizer.vocabSize == config.vocabSize else {
            throw ExportError("\(tokenizerPath) has \(tokenizer.vocabSize) ids but \(configPath) says vocab_size \(config.vocabSize)")
        }
        return (model, tokenizer)
    }

    /// Our config from transformers' NanoChatConfig, refusing what our blocks do not compute.
    static func nanochatConfig(_ hf: [String: Any], path: String) throws -> ModelConfig {
        // Each size range-checked before use (a layer count of -2 or 10^12 would trap or
        // allocate a terabyte), against the bound our config has for the key it becomes.
        func int(_ key: String, as ours: String) throws -> Int {
            guard let v = JSONNumber.strictInt(hf[key]) else { throw ExportError("\(path): \(key) is missing or not an integer") }
            let most = ModelConfig.largest[ours] ?? Int(Int32.max)
            guard (1...most).contains(v) else { throw ExportError("\(path): \(key) must be in 1...\(most), got \(v)") }
            return v
        }
        func expect(_ key: String, _ ok: (Any?) -> Bool, _ what: String) throws {
            guard ok(hf[key]) else { throw ExportError("\(path): \(key) is \(hf[key].map { "\($0)" } ?? "missing"); this model needs \(what)") }
        }
        let width = try int("hidden_size", as: "n_embd"), heads = try int("num_attention_heads", as: "n_head")
        let kvHeads = hf["num_key_value_heads"] == nil ? heads : try int("num_key_value_heads", as: "n_kv_head")
        try expect("intermediate_size", { JSONNumber.strictInt($0) == 4 * width }, "4 × hidden_size = \(4 * width)")
        try expect("head_dim", { $0 == nil || JSONNumber.strictInt($0) == width / max(heads, 1) }, "hidden_size / num_attention_heads")
        try expect("hidden_act", { $0 == nil || $0 as? String == "relu2" }, "relu2")
        try expect("final_logit_softcapping", { ($0 as? Double) == Double(logitSoftcap) }, "\(Double(logitSoftcap))")
        try expect("tie_word_embeddings", { $0 == nil || $0 as? Bool == false }, "false (separate embedding and head)")
        try expect("attention_bias", { $0 == nil || $0 as? Bool == false }, "false")
        let rope = (hf["rope_parameters"] as? [String: Any])?["rope_theta"] ?? hf["rope_theta"]
        guard (rope as? Double) == 10000 else {
            throw ExportError("\(path): rope_theta is \(rope.map { "\($0)" } ?? "missing"); this model's rotary base is 10000")
        }
        let layers = try int("num_hidden_layers", as: "n_layer")
        return ModelConfig(sequenceLen: try int("max_position_embeddings", as: "sequence_len"), vocabSize: try int("vocab_size", as: "vocab_size"),
                           nLayer: layers, nHead: heads, nKVHead: kvHeads, nEmbd: width,
                           blockPattern: Array(repeating: .transformer, count: layers))
    }

    /// The constants of our blocks a hybrid config.json may state: if it does, it must state
    /// ours (the modeling file would compute with its value, we with ours).
    static func checkHybridConstants(_ hf: [String: Any], path: String) throws {
        let ours: [(String, Double)] = [("logit_softcap", Double(logitSoftcap)), ("rms_norm_eps", Double(rmsNormEpsilon)),
                                        ("rope_theta", 10000)]
        for (key, value) in ours {
            guard let given = hf[key] else { continue }
            guard let n = given as? NSNumber, String(cString: n.objCType) != "c", Float(n.doubleValue) == Float(value) else {
                throw ExportError("\(path): \(key) is \(given); this project's blocks compute with \(Float(value)), so the folder's numbers would not be ours")
            }
        }
    }

    /// A file of the folder that is a symbolic link to somewhere outside it is refused: a
    /// downloaded folder must not make the import read the user's other files.
    static func requireInside(_ dir: String, _ name: String) throws {
        if let why = FolderFile.linkOutside("\(dir)/\(name)") { throw ExportError("\(dir)/\(name): \(why)") }
    }

    /// Every tensor of the folder's weight files, with the file it is in.
    static func readWeights(_ dir: String) throws -> [(name: String, tensor: Tensor, file: String)] {
        let indexPath = "\(dir)/model.safetensors.index.json"
        var files = ["\(dir)/model.safetensors"]
        if let data = FileManager.default.contents(atPath: indexPath) {
            guard let index = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
                  let map = index["weight_map"] as? [String: String] else {
                throw ExportError("\(indexPath): no weight_map")
            }
            let names = Set(map.values).sorted()
            if let bad = names.first(where: { $0.contains("/") || $0.hasPrefix(".") }) {
                throw ExportError("\(indexPath): weight file \"\(bad)\" is not a file name in the folder")
            }
            for name in names { try requireInside(dir, name) }
            files = names.map { "\(dir)/\($0)" }
        }
        var out: [(name: String, tensor: Tensor, file: String)] = []
        for file in files {
            do {
                out += try Safetensors.read(file).tensors.map { (name: $0.0, tensor: $0.1, file: file) }
            } catch let e as TensorFileError {
                throw ExportError(e.description)
            }
        }
        return out
    }
}

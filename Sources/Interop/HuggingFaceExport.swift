// A checkpoint as a Hugging Face model folder: config.json, model.safetensors,
// generation_config.json and the tokenizer files, which transformers'
// AutoModelForCausalLM / AutoTokenizer load with no code of ours. An all-Transformer model
// is transformers' `nanochat` architecture (NanoChatForCausalLM): the same blocks (rotary
// then parameter-free QK norm, relu² MLP, a norm after the embedding, softcap 15), under
// other parameter names. The folder also carries a check: a fixed batch of ids with this
// model's logits and greedy continuation, which tools/hf_check.py compares with
// transformers' (reference.json, reference.safetensors).
import Blocks
import Foundation
import Tensor
import Tokenizer
import Inference

public struct ExportError: UserFacingError {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

public enum HuggingFaceExport {
    /// Our parameter names (SPEC §1.4) to transformers' NanoChatForCausalLM names.
    static func nanochatName(_ name: String) -> String {
        let table = [
            ("transformer.wte.weight", "model.embed_tokens.weight"),
            (".attn.c_q.weight", ".self_attn.q_proj.weight"), (".attn.c_k.weight", ".self_attn.k_proj.weight"),
            (".attn.c_v.weight", ".self_attn.v_proj.weight"), (".attn.c_proj.weight", ".self_attn.o_proj.weight"),
            (".mlp.c_fc.weight", ".mlp.fc1.weight"), (".mlp.c_proj.weight", ".mlp.fc2.weight"),
            ("transformer.h.", "model.layers."),
        ]
        return table.reduce(name) { $0.replacingOccurrences(of: $1.0, with: $1.1) }
    }

    /// Writes the folder; returns the files written.
    /// With `ownModeling`, every pattern ships modeling_nanochat_hybrid.py (an all-Mamba model
    /// keeps its logit softcap, which transformers' `mamba` lacks); otherwise all-Transformer
    /// and all-Mamba models use transformers' own classes.
    @discardableResult
    public static func write(model: GPT, tokenizer: Tokenizer, modelingCode: Data, ownModeling: Bool = false, to dir: String) throws -> [String] {
        let c = model.config
        let remote = ownModeling || c.hasMamba && !(c.blockPattern.allSatisfy { $0 == .mamba } && !c.mambaUseMLP)
        let allMamba = !remote && c.blockPattern.allSatisfy { $0 == .mamba }   // transformers' mamba
        guard tokenizer.vocabSize == c.vocabSize else {
            throw ExportError("the tokenizer has \(tokenizer.vocabSize) ids but the model's vocab_size is \(c.vocabSize)")
        }
        try AtomicFile.makeDirectories(dir)
        let special = ChatTokens(tokenizer)
        let ids: [String: Any] = ["bos_token_id": Int(special.bos), "eos_token_id": Int(special.assistantEnd), "pad_token_id": Int(special.bos)]
        let config: [String: Any] = remote ? remoteConfig(c).merging(ids) { $1 } : allMamba ? mambaConfig(c).merging(ids) { $1 } : [
            "architectures": ["NanoChatForCausalLM"],
            "model_type": "nanochat",
            "vocab_size": c.vocabSize,
            "hidden_size": c.nEmbd,
            "intermediate_size": 4 * c.nEmbd,
            "num_hidden_layers": c.nLayer,
            "num_attention_heads": c.nHead,
            "num_key_value_heads": c.nKVHead,
            "head_dim": c.headDim,
            "max_position_embeddings": c.sequenceLen,
            "hidden_act": "relu2",
            "rms_norm_eps": rmsNormEpsilon,
            "rope_parameters": ["rope_type": "default", "rope_theta": 10000.0] as [String: Any],
            "final_logit_softcapping": logitSoftcap,
            "attention_bias": false,
            "attention_dropout": 0.0,
            "tie_word_embeddings": false,
            "bos_token_id": Int(special.bos),
            "eos_token_id": Int(special.assistantEnd),
            "pad_token_id": Int(special.bos),
            "dtype": "float32",
        ]
        let generation: [String: Any] = [
            "bos_token_id": Int(special.bos),
            "eos_token_id": [Int(special.assistantEnd), Int(special.bos)],
            "pad_token_id": Int(special.bos),
        ]
        func json(_ object: Any) throws -> Data {
            try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        }
        var written: [String] = []
        func put(_ data: Data, _ name: String) throws {
            try AtomicFile.write(data, to: "\(dir)/\(name)")
            written.append(name)
        }
        let tensors = remote ? model.parameters.parameters.map { ($0.name, float32($0.tensor)) }
            : allMamba ? mambaTensors(model) : model.parameters.parameters.map { (nanochatName($0.name), float32($0.tensor)) }
        try Safetensors.write(tensors, metadata: ["format": "pt"], to: "\(dir)/model.safetensors")
        written.append("model.safetensors")
        try put(floatsKeptFloat(try json(config), keys: ["final_logit_softcapping", "rope_theta", "attention_dropout", "logit_softcap"]), "config.json")
        try put(try json(generation), "generation_config.json")
        if remote { try put(modelingCode, remoteModule + ".py") }
        try put(try tokenizer.huggingFaceTokenizerJSON(), "tokenizer.json")
        try put(try tokenizer.huggingFaceConfigJSON(contextLength: c.sequenceLen), "tokenizer_config.json")
        try put(try json(["bos_token": "<|bos|>", "eos_token": "<|assistant_end|>", "pad_token": "<|bos|>"]), "special_tokens_map.json")
        written += try writeReference(model: model, tokenizer: tokenizer, softcapped: !allMamba, to: dir)
        return written
    }

    /// JSONSerialization writes 15.0 as 15; transformers' config classes check that float
    /// fields hold floats, so the named keys' whole numbers get their ".0" back.
    static func floatsKeptFloat(_ data: Data, keys: [String]) -> Data {
        var text = String(decoding: data, as: UTF8.self)
        for key in keys {
            guard let range = text.range(of: "\"\(key)\" : ") else { continue }
            let digits = text[range.upperBound...].prefix { $0.isNumber || $0 == "-" }
            let after = text.index(range.upperBound, offsetBy: digits.count)
            if !digits.isEmpty && (after == text.endIndex || !".eE".contains(text[after])) {
                text.insert(contentsOf: ".0", at: after)
            }
        }
        return Data(text.utf8)
    }

    /// The modeling file shipped for trust_remote_code=True, and its classes.
    public static let remoteModule = "modeling_nanochat_hybrid"

    /// config.json for the shipped modeling file: our own keys (SPEC §1) and the auto_map
    /// that points transformers' Auto classes at it.
    static func remoteConfig(_ c: ModelConfig) -> [String: Any] {
        [
            "architectures": ["NanochatHybridForCausalLM"],
            "model_type": "nanochat_hybrid",
            "auto_map": ["AutoConfig": "\(remoteModule).NanochatHybridConfig",
                         "AutoModelForCausalLM": "\(remoteModule).NanochatHybridForCausalLM"],
            "vocab_size": c.vocabSize, "sequence_len": c.sequenceLen, "n_layer": c.nLayer, "n_head": c.nHead,
            "n_kv_head": c.nKVHead, "n_embd": c.nEmbd, "block_pattern": c.blockPattern.map(\.rawValue),
            "mamba_d_state": c.mambaDState, "mamba_d_conv": c.mambaDConv, "mamba_expand": c.mambaExpand,
            "mamba_use_mlp": c.mambaUseMLP, "logit_softcap": logitSoftcap, "rms_norm_eps": rmsNormEpsilon,
            "rope_theta": 10000.0, "tie_word_embeddings": false, "dtype": "float32",
        ]
    }

    /// transformers' MambaConfig for an all-Mamba model (no MLP).
    static func mambaConfig(_ c: ModelConfig) -> [String: Any] {
        [
            "architectures": ["MambaForCausalLM"],
            "model_type": "mamba",
            "vocab_size": c.vocabSize,
            "hidden_size": c.nEmbd,
            "state_size": c.mambaDState,
            "num_hidden_layers": c.nLayer,
            "layer_norm_epsilon": rmsNormEpsilon,
            "expand": c.mambaExpand,
            "conv_kernel": c.mambaDConv,
            "intermediate_size": c.mambaInner,
            "time_step_rank": c.dtRank,
            "use_bias": false,
            "use_conv_bias": true,
            "hidden_act": "silu",
            "residual_in_fp32": true,
            "tie_word_embeddings": false,
            "use_cache": true,
            "dtype": "float32",
        ]
    }

    /// An all-Mamba model under transformers' MambaForCausalLM names. Its blocks norm with a
    /// weight (ones here) and it has no norm after the embedding: each embedding row is
    /// written already normed (rmsnorm of a looked-up row is a function of the row alone).
    static func mambaTensors(_ model: GPT) -> [(String, Tensor)] {
        let c = model.config
        var out: [(String, Tensor)] = []
        let ones = Tensor(repeating: 1, shape: [c.nEmbd])
        for p in model.parameters.parameters {
            if p.name == "transformer.wte.weight" {
                out.append(("backbone.embeddings.weight", float32(GradMode.withoutGradients { rmsNorm(p.tensor) })))
            } else if p.name.hasPrefix("transformer.h.") {
                out.append((p.name.replacingOccurrences(of: "transformer.h.", with: "backbone.layers."), float32(p.tensor)))
            } else {
                out.append((p.name, float32(p.tensor)))
            }
        }
        for i in 0..<c.nLayer { out.append(("backbone.layers.\(i).norm.weight", ones)) }
        out.append(("backbone.norm_f.weight", ones))
        return out
    }

    /// The tensor in Float32 (the model may be in Float64).
    static func float32(_ t: Tensor) -> Tensor {
        t.dtype == .float32 ? t : Tensor(shape: t.shape, scalars: t.doubles, dtype: .float32)
    }

    /// The text the reference batch is made of: mixed scripts, digits, code, whitespace.
    static let referenceText = """
        The quick brown fox jumps over 13 lazy dogs. Ünïcödé, 漢字, русский, emoji 🙂!
        def f(x):\n    return x ** 2  # indented code\n\nSecond paragraph   with  spaces.
        """

    /// reference.json (the ids: two rows of the reference text's first tokens, and a prompt)
    /// and reference.safetensors (our logits for the rows, (2, T, V), and the prompt's greedy
    /// continuation).
    static func writeReference(model: GPT, tokenizer: Tokenizer, softcapped: Bool, to dir: String) throws -> [String] {
        let ids = tokenizer.encode(referenceText)
        let t = min(16, ids.count / 2, model.config.sequenceLen)
        let rows = Array(ids.prefix(t)) + Array(ids.suffix(t))
        // What the exported architecture computes: the softcapped logits, or (mamba has no
        // softcap) the head's output before it.
        let logits = GradMode.withoutGradients {
            let input = IndexTensor(shape: [2, t], values: rows)
            return softcapped ? model.logits(input) : linear(model.hidden(input), model.weights.head)
        }
        let prompt = [tokenizer.bosID] + tokenizer.encode("The quick brown")
        var continuation: [Int32] = []
        var sampler = Sampler(temperature: 0, topK: 0, seed: 0)
        Generator.generate(model, prompt: prompt, maxNewTokens: 16, sampler: &sampler) { id in
            continuation.append(id)
            return true
        }
        let conversation = Conversation([.init(.system, "Answer briefly."), .init(.user, "What is 12 plus 30?"),
                                         .init(.assistant, "12 + 30 = 42."), .init(.user, "And 12 times 30?")])
        let chat = try tokenizer.renderForReply(conversation)
        let reference: [String: Any] = [
            "conversation": conversation.messages.map { ["role": $0.role.rawValue, "content": $0.plainText ?? ""] },
            "chat_ids": chat.map(Int.init),
            "text": referenceText,
            "text_ids": ids.map(Int.init),
            "rows": [Array(rows.prefix(t)).map(Int.init), Array(rows.suffix(t)).map(Int.init)],
            "prompt": prompt.map(Int.init),
            "logits_softcapped": softcapped,
            "greedy": continuation.map(Int.init),
        ]
        try AtomicFile.write(try JSONSerialization.data(withJSONObject: reference, options: [.sortedKeys]), to: "\(dir)/reference.json")
        try Safetensors.write([("logits", float32(logits))], to: "\(dir)/reference.safetensors")
        return ["reference.json", "reference.safetensors"]
    }
}

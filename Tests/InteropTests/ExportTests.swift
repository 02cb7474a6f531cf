// The Hugging Face export: tokenizer.json's merges give our ids when applied as the
// `tokenizers` library applies them; the model folder holds transformers' names and config
// for all-T and all-M models, and our own names, keys and the modeling file for the rest.
import Foundation
import Blocks
import Tensor
import Testing
import Inference
import Interop
import Tokenizer

@Suite struct ExportTests {
    let tokenizer: Tokenizer

    init() throws {
        tokenizer = try Tokenizer.load(from: tokenizerFixtures + "/tokenizer")
    }

    /// Byte-level BPE as `tokenizers` runs it on one piece: a piece in the vocabulary is that
    /// token (ignore_merges); otherwise its characters are merged pair by pair, the pair of
    /// the earliest merge first (the leftmost on ties).
    func huggingFaceBPE(_ piece: [UInt8], vocab: [String: Int], merges: [String: Int]) -> [Int] {
        if let id = vocab[Tokenizer.byteLevelText(piece)] { return [id] }
        return mergedParts(piece, merges: merges).map { vocab[$0] ?? -1 }
    }

    /// The merge loop alone: the parts a piece's characters end in.
    func mergedParts(_ piece: [UInt8], merges: [String: Int]) -> [String] {
        var parts = piece.map { Tokenizer.byteLevelText([$0]) }
        while parts.count > 1 {
            var best: (rank: Int, at: Int)? = nil
            for i in 0..<(parts.count - 1) {
                if let r = merges[parts[i] + " " + parts[i + 1]], best == nil || r < best!.rank { best = (r, i) }
            }
            guard let (_, at) = best else { break }
            parts[at] += parts[at + 1]
            parts.remove(at: at + 1)
        }
        return parts
    }

    @Test func tokenizerJSONMergesGiveOurIDs() throws {
        let object = try #require(try JSONSerialization.jsonObject(with: tokenizer.huggingFaceTokenizerJSON()) as? [String: Any])
        let model = try #require(object["model"] as? [String: Any])
        let vocab = try #require(model["vocab"] as? [String: Int])
        let mergeList = try #require(model["merges"] as? [[String]])
        #expect(vocab.count == tokenizer.tokenBytes.count && mergeList.count == tokenizer.tokenBytes.count - 256)
        // A byte-level BPE with no unknown token: nothing to fall back to or fuse, no prefix or
        // suffix on pieces, no dropout; a piece that is a token is taken whole (tiktoken's rule).
        #expect(model["type"] as? String == "BPE" && model["ignore_merges"] as? Bool == true)
        #expect(model["fuse_unk"] as? Bool == false && model["byte_fallback"] as? Bool == false)
        for key in ["dropout", "unk_token", "continuing_subword_prefix", "end_of_word_suffix"] {
            #expect(model[key] is NSNull, "\(key)")
        }
        let decoder = try #require(object["decoder"] as? [String: Any])
        #expect(decoder["type"] as? String == "ByteLevel" && decoder["add_prefix_space"] as? Bool == false && decoder["use_regex"] as? Bool == false)
        var merges: [String: Int] = [:]
        for (i, m) in mergeList.enumerated() { merges[m[0] + " " + m[1]] = merges[m[0] + " " + m[1]] ?? i }
        // Every token's own bytes come back as that token through the merges alone.
        for r in 256..<tokenBytes.count {
            #expect(mergedParts(tokenBytes[r], merges: merges) == [Tokenizer.byteLevelText(tokenBytes[r])], "rank \(r)")
        }
        // Words (single pieces of the split pattern) encode as ours does.
        let text = "The quick brown fox jumps over the lazy dog while thirteen zebras whistle unexpectedly"
        for word in text.split(separator: " ").map({ " " + $0 }) {
            #expect(huggingFaceBPE(Array(word.utf8), vocab: vocab, merges: merges) == tokenizer.encode(word).map(Int.init), "\(word)")
        }
        let added = try #require(object["added_tokens"] as? [[String: Any]])
        #expect(added.map { $0["content"] as? String } == specialTokens && added.map { $0["id"] as? Int } == tokenizer.specialIDs.map(Int.init))
        // Each is marked special (decoding with skip_special_tokens drops it), matched whole,
        // never normalised or stripped.
        for entry in added {
            #expect(entry["special"] as? Bool == true && entry["normalized"] as? Bool == false && entry["single_word"] as? Bool == false)
            #expect(entry["lstrip"] as? Bool == false && entry["rstrip"] as? Bool == false)
        }
    }
    var tokenBytes: [[UInt8]] { tokenizer.tokenBytes }

    /// A tokenizer whose merges join equal parts (`- -`, `-- --`, `. .`): in runs those pairs
    /// overlap and tie, and the `tokenizers` library takes the leftmost. tokenizer.json's
    /// merges, applied that way, must give our ids for every run length.
    @Test func mergesThatTieEncodeAsOurs() throws {
        var lines: [String] = []
        for n in 1...48 {
            lines.append(String(repeating: "-", count: n) + " " + String(repeating: ".", count: n % 13 + 1) + " word\n")
            lines.append(String(repeating: "=", count: (n * 7) % 31 + 1) + " " + String(repeating: "-", count: (n * 5) % 17 + 2) + "\n")
        }
        let tok = try Tokenizer.train([lines.joined(), lines.reversed().joined()], vocabSize: 256 + 9 + 40)
        let object = try #require(try JSONSerialization.jsonObject(with: tok.huggingFaceTokenizerJSON()) as? [String: Any])
        let model = try #require(object["model"] as? [String: Any])
        let vocab = try #require(model["vocab"] as? [String: Int])
        let mergeList = try #require(model["merges"] as? [[String]])
        var merges: [String: Int] = [:]
        for (i, m) in mergeList.enumerated() { merges[m[0] + " " + m[1]] = merges[m[0] + " " + m[1]] ?? i }
        let ties = mergeList.filter { $0[0] == $0[1] }
        #expect(ties.count >= 4, "merges of equal parts: \(ties)")
        for c in ["-", ".", "="] {
            for n in 1...70 {
                let run = String(repeating: c, count: n)
                #expect(huggingFaceBPE(Array(run.utf8), vocab: vocab, merges: merges) == tok.encode(run).map(Int.init), "\(c) × \(n)")
            }
        }
        // And the folder's tokenizer.json imports back to the same ranks.
        let back = try Tokenizer.fromHuggingFace(try tok.huggingFaceTokenizerJSON(), path: "tokenizer.json")
        #expect(back.tokenBytes == tok.tokenBytes)
    }

    /// A tokenizer.json read back: merges in either of the tokenizers library's forms ("a b"
    /// strings, as older files have them, or pairs) give the same ranks; a file that would
    /// encode differently (merges out of order, another split pattern, a vocabulary id given
    /// twice, a merge missing) is refused, naming what differs.
    @Test func tokenizerJSONImportReadsBothMergeFormsAndRefusesWhatDiffers() throws {
        let json = try tokenizer.huggingFaceTokenizerJSON()
        let object = try #require(try JSONSerialization.jsonObject(with: json) as? [String: Any])
        let model = try #require(object["model"] as? [String: Any])
        let pairs = try #require(model["merges"] as? [[String]])
        func edited(_ edit: (inout [String: Any], inout [String: Any]) -> Void) throws -> Data {
            var o = object, m = model
            edit(&o, &m)
            o["model"] = m
            return try JSONSerialization.data(withJSONObject: o)
        }
        let strings = try edited { _, m in m["merges"] = pairs.map { $0.joined(separator: " ") } }
        #expect(try Tokenizer.fromHuggingFace(strings, path: "t.json").tokenBytes == tokenizer.tokenBytes)
        #expect(try Tokenizer.fromHuggingFace(json, path: "t.json").tokenBytes == tokenizer.tokenBytes)

        func refused(_ data: Data, _ message: String) {
            #expect { try Tokenizer.fromHuggingFace(data, path: "t.json") } throws: { error in
                "\(error)".hasPrefix("t.json: ") && "\(error)".contains(message)
            }
        }
        let swapped = try edited { _, m in m["merges"] = [pairs[1], pairs[0]] + pairs.dropFirst(2) }
        refused(swapped, "model.merges[0] is \"\(pairs[1][0])\" + \"\(pairs[1][1])\"; token 256 of the vocab is made by "
                + "\"\(pairs[0][0])\" + \"\(pairs[0][1])\", and other merges would make the tokenizers library encode differently")
        refused(try edited { _, m in m["merges"] = Array(pairs.dropLast()) },
                "model.merges has \(pairs.count - 1) merges; this vocabulary of \(tokenizer.tokenBytes.count) tokens needs \(pairs.count)")
        refused(try edited { o, _ in o["pre_tokenizer"] = ["type": "Split", "pattern": ["Regex": "\\s+"]] },
                "the pre-tokenizer's split pattern is \"\\s+\", not nanochat's")
        refused(try edited { _, m in
            var vocab = (m["vocab"] as? [String: Int]) ?? [:]
            vocab[Tokenizer.byteLevelText([0x41])] = 0x42
            m["vocab"] = vocab
        }, "vocab id 66 (")
    }

    @Test func byteCharactersAreGPT2s() {
        #expect(Tokenizer.byteLevelText(Array(" Hello\n".utf8)) == "ĠHelloĊ")
        #expect(Set((0...255).map { Tokenizer.byteLevelText([UInt8($0)]) }).count == 256)
        // Every byte: GPT-2's bytes_to_unicode keeps 33-126, 161-172 and 174-255 as
        // themselves and numbers the rest from U+0100 in byte order (0-32, 127-160, 173).
        for b in 0...255 {
            let wanted: UInt32 = switch b {
            case 0...32: 0x100 + UInt32(b)
            case 127...160: 0x121 + UInt32(b - 127)
            case 173: 0x143
            default: UInt32(b)
            }
            let got = Tokenizer.byteLevelText([UInt8(b)]).unicodeScalars.map(\.value)
            #expect(got == [wanted], "byte \(b): \(got), wanted \(wanted)")
        }
    }

    /// Stands in for the modeling file the CLI passes.
    let code = Data("# modeling file\n".utf8)

    @Test func modelFolderHasTheArchitecturesNames() throws {
        let config = ModelConfig(sequenceLen: 32, vocabSize: tokenizer.vocabSize, nLayer: 2, nHead: 2, nKVHead: 1, nEmbd: 32,
                                 blockPattern: [.transformer, .transformer])
        let dir = scratchPath("hf")
        let files = try HuggingFaceExport.write(model: try GPT(config: config, seed: 1), tokenizer: tokenizer, modelingCode: code, to: dir)
        for name in ["config.json", "model.safetensors", "generation_config.json", "tokenizer.json", "tokenizer_config.json"] {
            #expect(files.contains(name) && FileManager.default.fileExists(atPath: "\(dir)/\(name)"), "\(name)")
        }
        let (tensors, _) = try Safetensors.read("\(dir)/model.safetensors")
        let names = Set(tensors.map(\.0))
        #expect(names.contains("model.embed_tokens.weight") && names.contains("lm_head.weight")
                && names.contains("model.layers.1.self_attn.k_proj.weight") && names.contains("model.layers.0.mlp.fc2.weight"))
        #expect(tensors.first { $0.0 == "model.layers.0.self_attn.k_proj.weight" }?.1.shape == [16, 32])
        let text = try String(contentsOfFile: "\(dir)/config.json", encoding: .utf8)
        #expect(text.contains("\"final_logit_softcapping\" : 15.0") && text.contains("\"rope_theta\" : 10000.0"))
        let hf = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(hf["model_type"] as? String == "nanochat" && hf["num_key_value_heads"] as? Int == 1 && hf["head_dim"] as? Int == 16)
        // The numbers transformers computes with, typed from SPEC §1 (not read from our own
        // constants, which a wrong export would share): RMSNorm's eps is Float32's epsilon.
        #expect(hf["rms_norm_eps"] as? Double == 1.1920929e-07, "rms_norm_eps \(String(describing: hf["rms_norm_eps"]))")
        #expect(hf["hidden_size"] as? Int == 32 && hf["num_hidden_layers"] as? Int == 2 && hf["num_attention_heads"] as? Int == 2)
        #expect(hf["intermediate_size"] as? Int == 128 && hf["max_position_embeddings"] as? Int == 32 && hf["hidden_act"] as? String == "relu2")
        // The special tokens by the test tokenizer's ids (Tests/TokenizerTests/Fixtures: <|bos|>
        // 1015, <|assistant_end|> 1019): generation stops at the end of a reply, pads with <|bos|>.
        #expect(hf["bos_token_id"] as? Int == 1015 && hf["eos_token_id"] as? Int == 1019 && hf["pad_token_id"] as? Int == 1015)
        let generation = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/generation_config.json"))) as? [String: Any])
        #expect(generation["eos_token_id"] as? [Int] == [1019, 1015] && generation["bos_token_id"] as? Int == 1015)

        func model(_ pattern: [BlockKind], mlp: Bool = false) throws -> GPT {
            try GPT(config: ModelConfig(sequenceLen: 32, vocabSize: tokenizer.vocabSize, nLayer: pattern.count, nHead: 2, nKVHead: 2,
                                        nEmbd: 32, blockPattern: pattern, mambaUseMLP: mlp), seed: 1)
        }
        // A hybrid, or Mamba layers with an MLP: our names, our config keys, the modeling file.
        for (pattern, mlp) in [([BlockKind.transformer, .mamba], false), ([.mamba, .mamba], true)] {
            let hdir = scratchPath("hf-remote")
            let hm = try model(pattern, mlp: mlp)
            let hfiles = try HuggingFaceExport.write(model: hm, tokenizer: tokenizer, modelingCode: code, to: hdir)
            let shipped = try Data(contentsOf: URL(fileURLWithPath: "\(hdir)/modeling_nanochat_hybrid.py"))
            #expect(hfiles.contains("modeling_nanochat_hybrid.py") && shipped == code)
            let (ht, _) = try Safetensors.read("\(hdir)/model.safetensors")
            #expect(ht.map(\.0) == hm.parameters.parameters.map(\.name))
            #expect(zip(ht, hm.parameters.parameters).allSatisfy { $0.1.doubles == $1.tensor.doubles })
            let hc = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(hdir)/config.json"))) as? [String: Any])
            #expect((hc["auto_map"] as? [String: String])?["AutoModelForCausalLM"] == "modeling_nanochat_hybrid.NanochatHybridForCausalLM")
            #expect(hc["block_pattern"] as? [String] == pattern.map(\.rawValue) && hc["mamba_use_mlp"] as? Bool == mlp)
        }

        // All-Mamba: transformers' mamba names, unit norms, the embedding rows normed.
        let m = try model([.mamba, .mamba])
        let mdir = scratchPath("hf4")
        let mfiles = try HuggingFaceExport.write(model: m, tokenizer: tokenizer, modelingCode: code, to: mdir)
        #expect(!mfiles.contains("modeling_nanochat_hybrid.py"))
        let (mt, _) = try Safetensors.read("\(mdir)/model.safetensors")
        let byName = Dictionary(uniqueKeysWithValues: mt.map { ($0.0, $0.1) })
        #expect(byName["backbone.layers.1.mixer.A_log"]?.shape == [64, 16] && byName["backbone.norm_f.weight"]?.doubles.allSatisfy { $0 == 1 } == true)
        let row = try #require(byName["backbone.embeddings.weight"]).doubles.prefix(32)
        #expect(abs(row.map { $0 * $0 }.reduce(0, +) / 32 - 1) < 1e-4)
        let mconfig = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(mdir)/config.json"))) as? [String: Any])
        #expect(mconfig["model_type"] as? String == "mamba" && mconfig["time_step_rank"] as? Int == 2 && mconfig["state_size"] as? Int == 16)
        // Every key MambaConfig reads, as our blocks compute: projections without bias, the
        // convolution with one, SiLU, the RMSNorm epsilon, separate embedding and head.
        let c = m.config
        let wanted: [String: Any] = [
            "architectures": ["MambaForCausalLM"], "model_type": "mamba", "vocab_size": c.vocabSize, "hidden_size": c.nEmbd,
            "state_size": c.mambaDState, "num_hidden_layers": 2, "layer_norm_epsilon": Double(rmsNormEpsilon),
            "expand": c.mambaExpand, "conv_kernel": c.mambaDConv, "intermediate_size": c.mambaExpand * c.nEmbd,
            "time_step_rank": (c.nEmbd + 15) / 16, "use_bias": false, "use_conv_bias": true, "hidden_act": "silu",
            "residual_in_fp32": true, "tie_word_embeddings": false, "use_cache": true, "dtype": "float32",
            "bos_token_id": 1015, "eos_token_id": 1019, "pad_token_id": 1015,
        ]
        #expect(Set(mconfig.keys) == Set(wanted.keys), "\(mconfig.keys.sorted())")
        for (key, value) in wanted {
            #expect((mconfig[key] as? NSObject) == (value as? NSObject), "\(key): \(mconfig[key] ?? "missing"), wanted \(value)")
        }

        // All-Mamba with our own modeling file (--modeling ours): our names, the softcap kept.
        let odir = scratchPath("hf-ours")
        let ofiles = try HuggingFaceExport.write(model: m, tokenizer: tokenizer, modelingCode: code, ownModeling: true, to: odir)
        let oconfig = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(odir)/config.json"))) as? [String: Any])
        #expect(ofiles.contains("modeling_nanochat_hybrid.py") && oconfig["model_type"] as? String == "nanochat_hybrid")
        #expect(oconfig["logit_softcap"] as? Double == 15 && oconfig["block_pattern"] as? [String] == ["M", "M"])
        let (ot, _) = try Safetensors.read("\(odir)/model.safetensors")
        #expect(ot.map(\.0) == m.parameters.parameters.map(\.name))
    }

    /// The exported tokenizer puts <|bos|> before a text (transformers' default
    /// add_special_tokens), as sample and the server do; its chat template reads content
    /// parts and refuses a special token's name inside a message.
    @Test func exportedTokenizerBeginsWithBOSAndItsTemplateReadsParts() throws {
        let object = try #require(try JSONSerialization.jsonObject(with: tokenizer.huggingFaceTokenizerJSON()) as? [String: Any])
        let post = try #require(object["post_processor"] as? [String: Any])
        #expect(post["type"] as? String == "TemplateProcessing")
        let single = try #require(post["single"] as? [[String: [String: Any]]])
        #expect(single.count == 2 && single[0]["SpecialToken"]?["id"] as? String == "<|bos|>" && single[1]["Sequence"]?["id"] as? String == "A")
        let special = (post["special_tokens"] as? [String: [String: Any]])?["<|bos|>"]
        #expect(special?["ids"] as? [Int] == [Int(tokenizer.bosID)])
        let template = Tokenizer.chatTemplate
        for piece in ["part['type'] == 'text'", "'<|python_start|>'", "'<|output_start|>'", "raise_exception", "'<|assistant_end|>'"] {
            #expect(template.contains(piece), "\(piece)")
        }
        // A system message is folded into the first user message with a blank line after it,
        // as Conversation.turns() folds it (SPEC §3.8): the template's own literal, \n\n.
        #expect(template.contains("{%- set ns.system = content(message) + '\\n\\n' -%}"))
        let folded = try Conversation([.init(.system, "S"), .init(.user, "U")]).turns()
        #expect(folded.first?.plainText == "S\n\nU")
        // Every special token's name is checked in message text.
        for name in specialTokens { #expect(template.contains("'\(name)'")) }
    }
}

/// Every exported tensor holds, value for value, the parameter SPEC §3.10 says it names: the
/// table here is written out from the SPEC, not taken from the exporter, so a swapped pair
/// (k and v, fc1 and fc2) fails even where the shapes agree.
@Suite struct ExportedTensorsTests {
    let tokenizer: Tokenizer
    init() throws { tokenizer = try Tokenizer.load(from: tokenizerFixtures + "/tokenizer") }

    /// transformers' name for one of our parameters, per SPEC §3.10; nil for one it has no rule for.
    static func specName(_ ours: String, mamba: Bool) -> String? {
        if ours == "lm_head.weight" { return ours }
        if ours == "transformer.wte.weight" { return mamba ? "backbone.embeddings.weight" : "model.embed_tokens.weight" }
        let parts = ours.split(separator: ".", maxSplits: 3).map(String.init)   // transformer, h, i, rest
        guard parts.count == 4, parts[0] == "transformer", parts[1] == "h", let i = Int(parts[2]) else { return nil }
        if mamba { return parts[3].hasPrefix("mixer.") ? "backbone.layers.\(i).\(parts[3])" : nil }
        let rest = [
            "attn.c_q.weight": "self_attn.q_proj.weight", "attn.c_k.weight": "self_attn.k_proj.weight",
            "attn.c_v.weight": "self_attn.v_proj.weight", "attn.c_proj.weight": "self_attn.o_proj.weight",
            "mlp.c_fc.weight": "mlp.fc1.weight", "mlp.c_proj.weight": "mlp.fc2.weight",
        ][parts[3]]
        return rest.map { "model.layers.\(i).\($0)" }
    }

    @Test(arguments: [(2, 2), (2, 1), (4, 2)])
    func everyTensorHoldsWhatItNames(heads: Int, kvHeads: Int) throws {
        for pattern: [BlockKind] in [[.transformer, .transformer], [.mamba, .mamba]] {
            let mamba = pattern[0] == .mamba
            let model = try GPT(config: ModelConfig(sequenceLen: 16, vocabSize: tokenizer.vocabSize, nLayer: 2, nHead: heads,
                                                    nKVHead: kvHeads, nEmbd: 32, blockPattern: pattern), seed: 11)
            let dir = scratchPath("hf-values")
            try HuggingFaceExport.write(model: model, tokenizer: tokenizer, modelingCode: Data("# code\n".utf8), to: dir)
            let (stored, _) = try Safetensors.read("\(dir)/model.safetensors")
            let byName = Dictionary(stored.map { ($0.0, $0.1) }, uniquingKeysWith: { a, _ in a })
            var named = Set<String>()
            for p in model.parameters.parameters {
                guard let hf = Self.specName(p.name, mamba: mamba) else { Issue.record("no SPEC name for \(p.name)"); continue }
                named.insert(hf)
                let t = try #require(byName[hf], "\(hf) (\(p.name)) missing")
                #expect(t.shape == p.tensor.shape, "\(hf)")
                if mamba && p.name == "transformer.wte.weight" {
                    // Each row written normed: row / rms(row), eps as in §1.2.
                    let c = model.config.nEmbd, ours = p.tensor.doubles, got = t.doubles
                    for r in [0, 7, tokenizer.vocabSize - 1] {
                        let row = ours[(r * c)..<((r + 1) * c)]
                        let rms = (row.map { $0 * $0 }.reduce(0, +) / Double(c) + rmsNormEpsilon).squareRoot()
                        for j in 0..<c { #expect(abs(got[r * c + j] - row[row.startIndex + j] / rms) < 1e-5, "row \(r)") }
                    }
                } else {
                    #expect(t.doubles == p.tensor.doubles.map { Double(Float($0)) }, "\(hf) does not hold \(p.name)")
                }
            }
            if mamba {   // and the unit norms the architecture has and ours does not
                for extra in ["backbone.layers.0.norm.weight", "backbone.layers.1.norm.weight", "backbone.norm_f.weight"] {
                    #expect(byName[extra]?.doubles.allSatisfy { $0 == 1 } == true, "\(extra)")
                    named.insert(extra)
                }
            }
            #expect(Set(byName.keys) == named, "\(pattern): extra \(Set(byName.keys).subtracting(named))")
        }
    }
}

/// A Hugging Face folder imports back to the same model file and tokenizer; what our blocks
/// do not compute is refused naming the config key.
@Suite struct HuggingFaceImportTests {
    let tokenizer: Tokenizer
    init() throws { tokenizer = try Tokenizer.load(from: tokenizerFixtures + "/tokenizer") }

    @Test(arguments: [[BlockKind.transformer, .transformer], [.transformer, .mamba]])
    func exportThenImportIsByteIdentical(pattern: [BlockKind]) throws {
        let m = try GPT(config: ModelConfig(sequenceLen: 16, vocabSize: tokenizer.vocabSize, nLayer: 2, nHead: 2, nKVHead: 1,
                                            nEmbd: 16, blockPattern: pattern), seed: 3)
        let (ours, folder, back) = (scratchPath("hfi-ours"), scratchPath("hfi-folder"), scratchPath("hfi-back"))
        try Checkpoint.save(m, step: 5, to: ours)
        try HuggingFaceExport.write(model: m, tokenizer: tokenizer, modelingCode: Data("# code\n".utf8), to: folder)
        let (model, tok) = try HuggingFaceImport.read(from: folder)
        #expect(model.config == m.config && tok.identity == tokenizer.identity)
        try Checkpoint.save(model, step: 5, to: back)
        #expect(try Data(contentsOf: URL(fileURLWithPath: Checkpoint.modelPath(ours, step: 5)))
                == Data(contentsOf: URL(fileURLWithPath: Checkpoint.modelPath(back, step: 5))))
    }

    /// A folder whose weights are sharded, as `save_pretrained` leaves a large model
    /// (model.safetensors.index.json naming the file of each tensor), imports to the same
    /// model as the single file; an index naming a file outside the folder is refused.
    @Test func shardedWeightsImportAsOneFile() throws {
        let m = try GPT(config: ModelConfig(sequenceLen: 16, vocabSize: tokenizer.vocabSize, nLayer: 2, nHead: 2, nKVHead: 1,
                                            nEmbd: 16, blockPattern: [.transformer, .mamba]), seed: 5)
        let folder = scratchPath("hfi-sharded")
        try HuggingFaceExport.write(model: m, tokenizer: tokenizer, modelingCode: Data("# code\n".utf8), to: folder)
        let (tensors, _) = try Safetensors.read("\(folder)/model.safetensors")
        let half = tensors.count / 2
        let shards = [("model-00001-of-00002.safetensors", Array(tensors[..<half])),
                      ("model-00002-of-00002.safetensors", Array(tensors[half...]))]
        var map: [String: String] = [:]
        for (file, part) in shards {
            try Safetensors.write(part, to: "\(folder)/\(file)")
            for (name, _) in part { map[name] = file }
        }
        try FileManager.default.removeItem(atPath: "\(folder)/model.safetensors")
        let indexPath = "\(folder)/model.safetensors.index.json"
        func writeIndex(_ map: [String: String]) throws {
            try JSONSerialization.data(withJSONObject: ["metadata": [:] as [String: Any], "weight_map": map])
                .write(to: URL(fileURLWithPath: indexPath))
        }
        try writeIndex(map)
        let (model, _) = try HuggingFaceImport.read(from: folder)
        for (p, q) in zip(model.parameters.parameters, m.parameters.parameters) {
            #expect(p.name == q.name && p.tensor.shape == q.tensor.shape && p.tensor.floats == q.tensor.floats, "\(p.name)")
        }
        map[tensors[0].0] = "../model-00001-of-00002.safetensors"
        try writeIndex(map)
        #expect { try HuggingFaceImport.read(from: folder) } throws: { error in
            "\(error)".contains("weight file \"../model-00001-of-00002.safetensors\" is not a file name in the folder")
        }
    }

    /// A one-layer Transformer (two heads of 8) exported to a new folder, and its config.json.
    func exportedSmallTransformer(seed: UInt64, _ tag: String) throws -> (model: GPT, folder: String, path: String) {
        let m = try GPT(config: ModelConfig(sequenceLen: 16, vocabSize: tokenizer.vocabSize, nLayer: 1, nHead: 2, nKVHead: 2,
                                            nEmbd: 16, blockPattern: [.transformer]), seed: seed)
        let folder = scratchPath(tag)
        try HuggingFaceExport.write(model: m, tokenizer: tokenizer, modelingCode: Data(), to: folder)
        return (m, folder, "\(folder)/config.json")
    }

    @Test func whatOurBlocksDoNotComputeIsRefused() throws {
        let (_, folder, path) = try exportedSmallTransformer(seed: 3, "hfi-refuse")
        let original = try Data(contentsOf: URL(fileURLWithPath: path))
        for (key, value, said) in [("rope_parameters", ["rope_type": "default", "rope_theta": 100000.0] as Any, "rope_theta is 100000"),
                                   ("final_logit_softcapping", 30.0, "final_logit_softcapping is 30"),
                                   ("intermediate_size", 48, "intermediate_size is 48"),
                                   ("tie_word_embeddings", true, "tie_word_embeddings is")] {
            var config = try #require(try JSONSerialization.jsonObject(with: original) as? [String: Any])
            config[key] = value
            try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: path))
            #expect { try HuggingFaceImport.read(from: folder) } throws: { "\($0)".contains(said) }
        }
        var mamba = try #require(try JSONSerialization.jsonObject(with: original) as? [String: Any])
        mamba["model_type"] = "mamba"
        try JSONSerialization.data(withJSONObject: mamba).write(to: URL(fileURLWithPath: path))
        #expect { try HuggingFaceImport.read(from: folder) } throws: { "\($0)".contains("cannot be imported") }
        // Another split pattern in tokenizer.json.
        try original.write(to: URL(fileURLWithPath: path))
        let tokPath = "\(folder)/tokenizer.json"
        let text = try String(contentsOfFile: tokPath, encoding: .utf8)
        try text.replacingOccurrences(of: "\\p{N}{1,2}", with: "\\p{N}{1,3}").write(toFile: tokPath, atomically: true, encoding: .utf8)
        #expect { try HuggingFaceImport.read(from: folder) } throws: { "\($0)".contains("split pattern") }
    }

    /// A config.json as older transformers write it (rope_theta at the top, no
    /// rope_parameters) and without the keys that may be left out (num_key_value_heads: as
    /// many as the heads; head_dim; hidden_act) imports as the same model; a top-level
    /// rope_theta other than ours is refused.
    @Test func anOlderConfigWithoutOptionalKeysImports() throws {
        let (m, folder, path) = try exportedSmallTransformer(seed: 5, "hfi-older")
        var config = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        for key in ["rope_parameters", "num_key_value_heads", "head_dim", "hidden_act"] { config[key] = nil }
        config["rope_theta"] = 10000.0
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: path))
        let (model, _) = try HuggingFaceImport.read(from: folder)
        #expect(model.config == m.config)
        for (p, q) in zip(model.parameters.parameters, m.parameters.parameters) {
            #expect(p.name == q.name && p.tensor.floats == q.tensor.floats, "\(p.name)")
        }
        config["rope_theta"] = 500000.0
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: path))
        #expect { try HuggingFaceImport.read(from: folder) } throws: { "\($0)".contains("rope_theta is 500000") }
    }

    /// A folder that falls short is named by file and cause: no config.json, one that is not
    /// an object, another model_type, a hybrid config that is not ours or states another
    /// constant, a tensor missing or one the model lacks, an index without a weight map, no
    /// tokenizer.json or one of another size.
    @Test func aFolderThatFallsShortIsNamedByFileAndCause() throws {
        let m = try GPT(config: ModelConfig(sequenceLen: 16, vocabSize: tokenizer.vocabSize, nLayer: 2, nHead: 2, nKVHead: 1,
                                            nEmbd: 16, blockPattern: [.transformer, .mamba]), seed: 4)
        let folder = scratchPath("hfi-short")
        try HuggingFaceExport.write(model: m, tokenizer: tokenizer, modelingCode: Data("# code\n".utf8), to: folder)
        let configPath = "\(folder)/config.json", weights = "\(folder)/model.safetensors", tokPath = "\(folder)/tokenizer.json"
        let config = try Data(contentsOf: URL(fileURLWithPath: configPath)), tokenizerJSON = try Data(contentsOf: URL(fileURLWithPath: tokPath))
        func refused(_ message: String, _ note: Comment? = nil) {
            #expect(note) { try HuggingFaceImport.read(from: folder) } throws: { error in
                "\(error)" == message || { Issue.record("\(error)\n  is not\n\(message)"); return false }()
            }
        }
        func writeConfig(_ change: (inout [String: Any]) -> Void) throws {
            var object = try #require(try JSONSerialization.jsonObject(with: config) as? [String: Any])
            change(&object)
            try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: configPath))
        }
        #expect(try HuggingFaceImport.read(from: folder).model.config == m.config)

        try FileManager.default.removeItem(atPath: configPath)
        refused("\(configPath): missing; not a Hugging Face model folder")
        try Data("[1, 2]".utf8).write(to: URL(fileURLWithPath: configPath))
        refused("\(configPath): not a JSON object")
        try writeConfig { $0["model_type"] = "llama" }
        refused("\(configPath): model_type \"llama\"; the folders that import are `nanochat` and `nanochat_hybrid`")
        try writeConfig { $0["model_type"] = nil }
        refused("\(configPath): model_type \"missing\"; the folders that import are `nanochat` and `nanochat_hybrid`")
        try writeConfig { $0["rms_norm_eps"] = 1e-5 }
        refused("\(configPath): rms_norm_eps is 1e-05; this project's blocks compute with \(Float(rmsNormEpsilon)), so the folder's numbers would not be ours")
        try writeConfig { $0["rope_theta"] = true }
        refused("\(configPath): rope_theta is 1; this project's blocks compute with 10000.0, so the folder's numbers would not be ours", "true is not 1")
        try writeConfig { $0["logit_softcap"] = 15 }
        #expect(try HuggingFaceImport.read(from: folder).model.config == m.config, "the constant as an integer")
        try writeConfig { $0["n_embd"] = "wide" }
        #expect { try HuggingFaceImport.read(from: folder) } throws: { "\($0)".hasPrefix("\(configPath): not a model config of this project: ") }
        try config.write(to: URL(fileURLWithPath: configPath))

        let tensors = try Safetensors.read(weights).tensors
        try Safetensors.write(tensors.filter { $0.0 != "transformer.h.1.mixer.A_log" }, to: weights)
        refused("\(folder): tensor transformer.h.1.mixer.A_log is missing (the config needs shape [32, 16])")
        try Safetensors.write(tensors + [("lm_head.bias", Tensor(zeros: [tokenizer.vocabSize]))], to: weights)
        refused("\(weights): tensor lm_head.bias is not a parameter of the model in \(configPath)")
        try Safetensors.write(tensors, to: weights)
        let indexPath = "\(folder)/model.safetensors.index.json"
        try JSONSerialization.data(withJSONObject: ["metadata": [:] as [String: Any]]).write(to: URL(fileURLWithPath: indexPath))
        refused("\(indexPath): no weight_map")
        try FileManager.default.removeItem(atPath: indexPath)

        try FileManager.default.removeItem(atPath: tokPath)
        refused("\(tokPath): missing")
        let smaller = try Tokenizer.train(["a small vocabulary for a test of sizes, " + (0..<50).map { "w\($0) " }.joined()], vocabSize: 280)
        try smaller.huggingFaceTokenizerJSON().write(to: URL(fileURLWithPath: tokPath))
        refused("\(tokPath) has 280 ids but \(configPath) says vocab_size \(tokenizer.vocabSize)")
        try tokenizerJSON.write(to: URL(fileURLWithPath: tokPath))
        #expect(try HuggingFaceImport.read(from: folder).tokenizer.identity == tokenizer.identity)
    }
}

/// nanochat's layout: export then import gives our model file back byte for byte, for every
/// kind of pattern and with a vocabulary nanochat pads; what nanochat adds (padded rows,
/// torch.compile's prefix, BF16) is undone on import; another architecture is refused.
@Suite struct NanochatFormatTests {
    /// A tokenizer whose 300 ids nanochat pads to 320.
    let tokenizer: Tokenizer

    init() throws {
        tokenizer = try Tokenizer.train(["the cat sat on the mat; the dog sat on the log. " + (0..<400).map { "word\($0) " }.joined()],
                                        vocabSize: 300)
    }

    func model(_ pattern: [BlockKind], seed: UInt64 = 1) throws -> GPT {
        try GPT(config: ModelConfig(sequenceLen: 16, vocabSize: tokenizer.vocabSize, nLayer: pattern.count, nHead: 2, nKVHead: 1,
                                    nEmbd: 16, blockPattern: pattern), seed: seed)
    }

    /// A TT model written in nanochat's layout at `step`: the model, the checkpoint directory,
    /// its model file and the tensors in it.
    func exportedTT(step: Int) throws -> (GPT, String, String, [(String, Tensor)]) {
        let m = try model([.transformer, .transformer])
        let dir = try NanochatFormat.write(model: m, step: step, tokenizer: tokenizer, phase: .base, tag: "d2", valBPB: nil,
                                           to: scratchPath("nc-base"))
        let path = Checkpoint.modelPath(dir, step: step)
        return (m, dir, path, try Safetensors.read(path).tensors)
    }

    @Test(arguments: [[BlockKind.transformer, .transformer], [.transformer, .mamba], [.mamba, .mamba]])
    func exportThenImportIsByteIdentical(pattern: [BlockKind]) throws {
        #expect(tokenizer.vocabSize == 300)
        let ours = scratchPath("nc-ours"), base = scratchPath("nc-base"), back = scratchPath("nc-back")
        let m = try model(pattern)
        try Checkpoint.save(m, step: 12, to: ours)
        let dir = try NanochatFormat.write(model: m, step: 12, tokenizer: tokenizer, phase: .sft, tag: "d2", valBPB: 1.5, to: base)
        #expect(dir == "\(base)/chatsft_checkpoints/d2")
        let (written, _) = try Safetensors.read(Checkpoint.modelPath(dir, step: 12))
        let wte = try #require(written.first { $0.0 == "transformer.wte.weight" }?.1)
        #expect(wte.shape == [320, 16] && wte.floats.suffix(20 * 16).allSatisfy { $0 == 0 })
        let meta = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Checkpoint.metaPath(dir, step: 12)))) as? [String: Any])
        let config = try #require(meta["model_config"] as? [String: Any])
        // nanochat's GPTConfig takes exactly these keys; the hybrid fork's adds the pattern.
        #expect((config["block_pattern"] == nil) == pattern.allSatisfy { $0 == .transformer })
        #expect(config["vocab_size"] as? Int == 300 && meta["val_bpb"] as? Double == 1.5)

        let imported = try NanochatFormat.read(from: dir, step: nil)
        #expect(imported.step == 12 && imported.valBPB == 1.5 && imported.model.config == m.config)
        try Checkpoint.save(imported.model, step: 12, to: back)
        let a = try Data(contentsOf: URL(fileURLWithPath: Checkpoint.modelPath(ours, step: 12)))
        let b = try Data(contentsOf: URL(fileURLWithPath: Checkpoint.modelPath(back, step: 12)))
        #expect(a == b)
        #expect(try Tokenizer.load(from: "\(base)/tokenizer").identity == tokenizer.identity)
    }

    /// A file as nanochat's tools leave it: torch.compile's prefix on every name, random
    /// padded rows (nanochat initialises them), BF16 weights.
    @Test func importUndoesPrefixPaddingAndBF16() throws {
        let (m, dir, path, tensors) = try exportedTT(step: 3)
        // BF16 is Float32's top half: round each value to it, as torch's .bfloat16() does.
        func bf16(_ x: Float) -> Float {
            let bits = x.bitPattern
            return Float(bitPattern: (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) & 0xFFFF_0000)
        }
        var header: [String: Any] = [:]
        var body = Data()
        for (name, t) in tensors {
            var values = t.floats.map(bf16)
            if t.shape[0] == 320 { for i in (300 * 16)..<(320 * 16) { values[i] = bf16(Float(i % 7) - 3) } }
            let start = body.count
            for v in values { withUnsafeBytes(of: UInt16(v.bitPattern >> 16).littleEndian) { body.append(contentsOf: $0) } }
            header["_orig_mod." + name] = ["dtype": "BF16", "shape": t.shape, "data_offsets": [start, body.count]] as [String: Any]
        }
        let json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        var file = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { file.append(contentsOf: $0) }
        try (file + json + body).write(to: URL(fileURLWithPath: path))

        let imported = try NanochatFormat.read(from: dir, step: 3).model
        for (p, q) in zip(imported.parameters.parameters, m.parameters.parameters) {
            #expect(p.name == q.name && p.tensor.shape == q.tensor.shape)
            #expect(p.tensor.floats == q.tensor.floats.map(bf16), "\(p.name)")
        }
    }

    @Test func importRefusesAnotherArchitectureAndSaysWhy() throws {
        let (_, dir, path, tensors) = try exportedTT(step: 1)
        try Safetensors.write(tensors + [("resid_lambdas", Tensor(repeating: 1, shape: [2]))], to: path)
        #expect { try NanochatFormat.read(from: dir, step: 1) } throws: { error in
            "\(error)".contains("tensor resid_lambdas") && "\(error)".contains("later GPT")
        }
        // A nanochat directory still in torch's format points at the converter.
        try FileManager.default.moveItem(atPath: path, toPath: (path as NSString).deletingPathExtension + ".pt")
        #expect { try NanochatFormat.read(from: dir, step: 1) } throws: { error in
            "\(error)".contains("model_000001.pt") && "\(error)".contains("tools/nanochat_files.py unpack")
        }
    }

    @Test func tokenizerInfoWithOtherSpecialIDsIsRefused() throws {
        let dir = scratchPath("nc-tok")
        try tokenizer.save(to: dir)
        let infoPath = "\(dir)/\(Tokenizer.infoFile)"
        var info = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: infoPath))) as? [String: Any])
        var special = try #require(info["special_tokens"] as? [String: Int])
        (special["<|bos|>"], special["<|user_start|>"]) = (special["<|user_start|>"], special["<|bos|>"])
        info["special_tokens"] = special
        try JSONSerialization.data(withJSONObject: info).write(to: URL(fileURLWithPath: infoPath))
        #expect { try Tokenizer.load(from: dir) } throws: { error in
            "\(error)".contains("special_tokens differ") && "\(error)".contains("<|bos|>, <|user_start|>")
        }
    }
}

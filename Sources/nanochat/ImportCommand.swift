// `nanochat import`: a Hugging Face folder or a nanochat checkpoint into our checkpoint layout.
import ArgumentParser
import Foundation
import Blocks
import Tensor
import Train
import Tokenizer
import Interop

struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Make a checkpoint of ours from a nanochat checkpoint and its tokenizer, or from a Hugging Face model folder.",
        discussion: """
        CHECKPOINT is a nanochat checkpoint directory (BASE/base_checkpoints/d20, ...) after
        `python3 tools/nanochat_files.py unpack CHECKPOINT`, which writes model_S.safetensors
        beside model_S.pt (BF16 or Float32 as stored) and BASE/tokenizer/tokenizer.tiktoken
        and tokenizer_info.json from tokenizer.pkl. OUT receives model_S.safetensors,
        meta_S.json and tokenizer/, which every command here reads.

        --format hf: CHECKPOINT is a Hugging Face model folder of transformers' `nanochat`
        architecture (as `export --format hf` writes for an all-Transformer model, and as
        nanochat models are published) or one with this project's modeling file (hybrids):
        config.json, model.safetensors (or shards with model.safetensors.index.json; Float32,
        BF16 or F16) and tokenizer.json. The checkpoint gets --step (default 0).
        """
    )

    enum Format: String, ExpressibleByArgument, CaseIterable { case nanochat, hf }

    @Option(help: "nanochat checkpoint directory (holding meta_S.json and model_S.safetensors), or with --format hf a Hugging Face model folder.")
    var checkpoint: String
    @Option(help: "What CHECKPOINT is: nanochat (its checkpoint layout) or hf (a Hugging Face model folder).") var format: Format = .nanochat
    @Option(help: "Checkpoint step (nanochat: which to read, default the latest; hf: the step to record, default 0).") var step: Int?
    @Option(help: "nanochat tokenizer directory (default: the base directory's tokenizer/, two levels up).") var tokenizer: String?
    @Option(help: "Output checkpoint directory (must hold no checkpoint yet).") var out: String

    func validate() throws {
        if let step, step < 0 { throw ValidationError("--step must be ≥ 0, got \(step)") }
        if format == .hf && tokenizer != nil { throw ValidationError("--tokenizer is for --format nanochat; a Hugging Face folder has its tokenizer.json") }
    }

    func run() throws {
        try OutputDirectory.requireEmpty(out, what: "an imported checkpoint and its tokenizer", flag: nil)
        let imported: (model: GPT, step: Int, valBPB: Double?)
        let tok: Tokenizer
        switch format {
        case .hf:
            let (model, t) = try HuggingFaceImport.read(from: checkpoint)
            (imported, tok) = ((model, step ?? 0, nil), t)
        case .nanochat:
            imported = try NanochatFormat.read(from: checkpoint, step: step)
            let tokenizerDir = tokenizer ?? (((checkpoint as NSString).appendingPathComponent("../../tokenizer")) as NSString).standardizingPath
            do { tok = try Tokenizer.load(from: tokenizerDir) } catch let e as TokenizerError {
                throw UserError(e.message + " (nanochat's tokenizer.pkl is converted by `python3 tools/nanochat_files.py unpack`)")
            }
            guard tok.vocabSize == imported.model.config.vocabSize else {
                throw UserError("\(tokenizerDir) has \(tok.vocabSize) ids but the checkpoint's vocab_size is \(imported.model.config.vocabSize)")
            }
        }
        struct Meta: Encodable {
            let tokenizerDir = "tokenizer"
            let tokenizerHash: String
            let valBPB: Double?
            let importedFrom: String
            enum CodingKeys: String, CodingKey {
                case tokenizerDir = "tokenizer_dir", tokenizerHash = "tokenizer_hash", valBPB = "val_bpb", importedFrom = "imported_from"
            }
        }
        try tok.save(to: "\(out)/tokenizer")
        try Checkpoint.save(imported.model, step: imported.step, to: out,
                            extra: Meta(tokenizerHash: tok.identity, valBPB: imported.valBPB, importedFrom: checkpoint))
        let c = imported.model.config
        print("wrote \(Checkpoint.modelPath(out, step: imported.step)) (\(c.nLayer) layers \(c.blockPattern.map(\.rawValue).joined()), "
              + "n_embd \(c.nEmbd), vocab \(c.vocabSize)) and \(out)/tokenizer from \(checkpoint)")
    }
}

// `nanochat export`: a checkpoint as a Hugging Face model folder that transformers loads
// with no code of ours (AutoModelForCausalLM, AutoTokenizer with a chat template), or in
// nanochat's own layout (`nanochat import` reads them back: ImportCommand.swift).
import ArgumentParser
import Foundation
import Inference
import Blocks
import Tensor
import Train
import Tokenizer
import Interop

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a checkpoint as a Hugging Face model folder, or in nanochat's checkpoint layout.",
        discussion: """
        --format hf: an all-Transformer model becomes transformers' `nanochat` architecture
        (NanoChatForCausalLM) and an all-Mamba one `mamba` (MambaForCausalLM), loadable with
        AutoModelForCausalLM.from_pretrained(OUT) and AutoTokenizer.from_pretrained(OUT);
        any other pattern ships modeling_nanochat_hybrid.py and loads with
        trust_remote_code=True. `--modeling ours` ships that file for every pattern: an
        all-Mamba model then keeps its logit softcap (transformers' mamba has none, so its
        logits and loss differ from this project's), an all-Transformer one computes as here. The folder also holds reference.json and
        reference.safetensors (ids, this model's logits and greedy tokens) for
        tools/hf_check.py to compare with transformers.

        --format nanochat: OUT becomes a nanochat base directory, OUT/tokenizer/ and
        OUT/<phase>_checkpoints/<tag>/model_S.safetensors + meta_S.json with nanochat's
        names and padded vocabulary; `python3 tools/nanochat_files.py pack OUT` then writes
        the model_S.pt, tokenizer.pkl and token_bytes.pt that nanochat's scripts read
        (NANOCHAT_BASE_DIR=OUT).
        """
    )

    enum Format: String, ExpressibleByArgument, CaseIterable { case hf, nanochat }
    enum Modeling: String, ExpressibleByArgument, CaseIterable { case stock, ours }

    @Option(help: "Checkpoint directory.") var checkpoint: String
    @Option(help: "Checkpoint step (default: the latest).") var step: Int?
    @Option(help: "Tokenizer directory (default: the checkpoint's tokenizer/).") var tokenizer: String?
    @Option(help: "What to write: hf (a Hugging Face model folder) or nanochat (its checkpoint layout).") var format: Format = .hf
    @Option(help: "Output directory.") var out: String
    @Option(help: "hf format: stock (transformers' classes where they fit: nanochat for all-T, mamba for all-M) or ours (modeling_nanochat_hybrid.py for every pattern, numbers equal to this project's).")
    var modeling: Modeling = .stock
    @Flag(help: "Replace the files of an earlier export in --out (once the new ones are whole; other files are kept).") var overwrite = false
    @Option(help: "nanochat format: the training phase whose directory holds it (base, mid, sft, rl).") var phase: NanochatFormat.Phase = .base
    @Option(help: "nanochat format: the model tag (default: d<n_layer>).") var tag: String?

    func run() throws {
        let (model, loadedStep) = try Checkpoint.load(from: checkpoint, step: step)
        let tok = try CheckpointTokenizer.forText(model: model, checkpoint: checkpoint, step: loadedStep, given: tokenizer)
        if !overwrite { try OutputDirectory.requireEmpty(out, what: "an exported model", flag: "--overwrite") }
        do {
            if format == .nanochat {
                struct Recorded: Decodable {
                    let valBPB: Double?
                    enum CodingKeys: String, CodingKey { case valBPB = "val_bpb" }
                }
                let bpb = (try? Checkpoint.meta(Recorded.self, in: checkpoint, step: loadedStep))?.valBPB
                let dir = try OutputDirectory.install(into: out) { stage in
                    try NanochatFormat.write(model: model, step: loadedStep, tokenizer: tok, phase: phase,
                                             tag: tag ?? "d\(model.config.nLayer)", valBPB: bpb, to: stage)
                        .replacingOccurrences(of: stage, with: out)
                }
                print("wrote \(dir) and \(out)/tokenizer (\(checkpoint) step \(loadedStep)); "
                      + "python3 tools/nanochat_files.py pack \(out) adds nanochat's .pt and .pkl files")
                return
            }
            let files = try OutputDirectory.install(into: out) { stage in
                try HuggingFaceExport.write(model: model, tokenizer: tok, modelingCode: Data(PackageResources.modeling_nanochat_hybrid_py),
                                            ownModeling: modeling == .ours, to: stage)
            }
            print("wrote \(out): \(files.joined(separator: ", ")) (\(checkpoint) step \(loadedStep))")
        } catch let e as ExportError {
            throw UserError("\(checkpoint): \(e.message)")
        }
    }
}

extension NanochatFormat.Phase: ExpressibleByArgument {}


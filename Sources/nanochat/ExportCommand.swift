// `nanochat export`: a checkpoint as a Hugging Face model folder that transformers loads
// with no code of ours (AutoModelForCausalLM, AutoTokenizer with a chat template).
import ArgumentParser
import Foundation
import Train

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a checkpoint as a Hugging Face model folder (config.json, model.safetensors, tokenizer.json, ...).",
        discussion: """
        --format hf: an all-Transformer model becomes transformers' `nanochat` architecture
        (NanoChatForCausalLM) and an all-Mamba one `mamba` (MambaForCausalLM), loadable with
        AutoModelForCausalLM.from_pretrained(OUT) and AutoTokenizer.from_pretrained(OUT);
        any other pattern ships modeling_nanochat_hybrid.py and loads with
        trust_remote_code=True. The folder also holds reference.json and
        reference.safetensors (ids, this model's logits and greedy tokens) for
        tools/hf_check.py to compare with transformers.
        """
    )

    enum Format: String, ExpressibleByArgument, CaseIterable { case hf }

    @Option(help: "Checkpoint directory.") var checkpoint: String
    @Option(help: "Checkpoint step (default: the latest).") var step: Int?
    @Option(help: "Tokenizer directory (default: the checkpoint's tokenizer/).") var tokenizer: String?
    @Option(help: "What to write: hf (a Hugging Face model folder).") var format: Format = .hf
    @Option(help: "Output directory.") var out: String

    func run() throws {
        let (model, loadedStep) = try loadCheckpoint(checkpoint, step: step)
        let tok = try textTokenizer(for: model, checkpoint: checkpoint, step: loadedStep, given: tokenizer)
        do {
            let files = try HuggingFaceExport.write(model: model, tokenizer: tok, modelingCode: Data(PackageResources.modeling_nanochat_hybrid_py),
                                                    to: out)
            print("wrote \(out): \(files.joined(separator: ", ")) (\(checkpoint) step \(loadedStep))")
        } catch let e as ExportError {
            throw UserError("\(checkpoint): \(e.message)")
        } catch let e as TokenizerError {
            throw UserError(e.message)
        }
    }
}

// `nanochat sample`: continue a prompt, streaming tokens.
import ArgumentParser
import Blocks
import Foundation
import Tensor
import Train
import Tokenizer
import Inference

struct SampleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sample",
        abstract: "Continue a text prompt (or token ids), streaming the completion token by token."
    )

    @Option(help: "Checkpoint directory.") var checkpoint: String
    @Option(help: "Checkpoint step (default: the latest).") var step: Int?
    @Option(help: "Text prompt; the model sees <|bos|> then its tokens.") var prompt: String?
    @Option(help: "Prompt token ids instead of text, comma-separated (prints ids).") var tokens: String?
    @Option(help: "Tokenizer directory (default: the checkpoint's tokenizer/).") var tokenizer: String?
    @Option(help: "Tokens to generate.") var maxNewTokens: Int = 200
    @OptionGroup var sampling: SamplingOptions
    @OptionGroup var runOptions: RunOptions
    @OptionGroup var precision: PrecisionOptions

    func validate() throws {
        guard maxNewTokens >= 0 else { throw ValidationError("--max-new-tokens must be ≥ 0, got \(maxNewTokens)") }
        guard (prompt == nil) != (tokens == nil) else { throw ValidationError("give either --prompt TEXT or --tokens IDS") }
    }

    /// Tokens to generate after a prompt of `prompt` tokens: --max-new-tokens, cut (and said)
    /// where the model's context ends; a prompt that fills the context is an error.
    func room(_ prompt: Int, _ context: Int, flag: String) throws -> Int {
        guard prompt < context else {
            throw UserError("\(flag) makes \(prompt) tokens; this model's context is \(context) tokens (sequence_len), with room for at least one more")
        }
        if prompt + maxNewTokens > context {
            FileHandle.standardError.write(Data("sample: the context of \(context) tokens ends after \(context - prompt) new tokens\n".utf8))
        }
        return min(maxNewTokens, context - prompt)
    }

    func run() throws {
        runOptions.apply()
        let (model, loadedStep) = try Checkpoint.load(from: checkpoint, step: step)
        precision.apply(to: model, inference: true)
        var sampler = sampling.sampler(defaultTemperature: 0.8)
        let bytes = DecodeCache.bytesPerSequence(model.config, contextLength: model.config.sequenceLen)
        FileHandle.standardError.write(Data("decode cache: \(bytes) bytes per sequence at \(model.config.sequenceLen) positions\n".utf8))
        if let tokens {
            let ids = try parseIDs(tokens, vocabSize: model.config.vocabSize, flag: "--tokens")
            guard !ids.isEmpty else { throw UserError("--tokens is empty; give at least one token id") }
            Generator.generate(model, prompt: ids, maxNewTokens: try room(ids.count, model.config.sequenceLen, flag: "--tokens"), sampler: &sampler) { id in
                print(id, terminator: " ")
                fflush(nil)
                return true
            }
            print()
            return
        }
        let tok = try CheckpointTokenizer.forText(model: model, checkpoint: checkpoint, step: loadedStep, given: tokenizer)
        let text = prompt ?? ""
        let ids = [tok.bosID] + tok.encode(text)
        let count = try room(ids.count, model.config.sequenceLen, flag: "--prompt")
        print(text, terminator: "")
        fflush(nil)
        var stream = UTF8Stream()
        Generator.generate(model, prompt: ids, maxNewTokens: count, sampler: &sampler) { id in
            // <|bos|> starts a new document: show it as a blank line and go on.
            let piece = id == tok.bosID ? "\n" : stream.push((try? tok.bytes(of: id)) ?? [])
            print(piece, terminator: "")
            fflush(nil)
            return true
        }
        print(stream.finish())
    }
}

// `nanochat init`: a freshly initialised checkpoint from a config file.
import ArgumentParser
import Blocks
import Foundation
import Tensor
import Train
import Tokenizer
import Inference

struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Write a freshly initialised checkpoint (step 0) from a config file and overrides."
    )

    @Argument(help: "A config file of Python assignments, e.g. configs/hybrid_d12.py.")
    var config: String

    @Option(help: "Directory to write model_000000.safetensors and meta_000000.json into.")
    var out: String

    @Argument(parsing: .allUnrecognized, help: "Overrides, --key=value (e.g. --vocab_size=8192 --depth=4).")
    var overrides: [String] = []

    func run() throws {
        if let existing = Checkpoint.steps(in: out).first {
            throw UserError("\(out) already holds checkpoints (step \(existing) first); init writes a fresh run's step 0: give a new or empty directory")
        }
        let file = try loadConfig(config, overrides: overrides)
        let model = try GPT(config: try TrainingKeys.modelConfig(file), seed: UInt64(bitPattern: Int64(try file.requiredInt("seed"))))
        try Checkpoint.save(model, step: 0, to: out, extra: TrainingMeta(
            valBPB: nil, userConfig: TrainingKeys.values(file), resume: nil, tokenizerDir: nil))
        print("wrote \(Checkpoint.modelPath(out, step: 0)): \(model.config.parameterCount) parameters, "
              + "pattern \(model.config.blockPattern.map(\.rawValue).joined())")
    }
}

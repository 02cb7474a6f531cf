// `nanochat train`: one run, or one rank of a data-parallel run under mpirun.
import ArgumentParser
import Blocks
import Foundation
import Tensor
import Train
import Corpus
import Tokenizer

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a model from a config file and --key=value overrides, as nanochat's base_train.",
        discussion: """
        Reads the token shards in data_dir (from `nanochat prepare`) and the tokenizer in
        tokenizer_dir (default data_dir/tokenizer); writes checkpoints, metrics.jsonl and
        loss.svg to output_dir (default runs/<model_tag>, the tag defaulting to the config's
        name). --resume continues from the latest checkpoint there, --resume-step from a given
        one; the continued run equals the uninterrupted one bit for bit.

        Keys, set in the config file or as --key=value (name: type = default, then meaning):
        """ + "\n" + TrainingKeys.helpText
    )

    @Argument(help: "A config file of Python assignments, e.g. configs/shakespeare_d4.py.") var config: String
    @Flag(help: "Continue from the latest checkpoint in output_dir.") var resume = false
    @Option(help: "Continue from the checkpoint of this step.") var resumeStep: Int?
    @Flag(help: "Start afresh even if output_dir holds checkpoints; they are deleted when the new run saves its first.")
    var overwrite = false
    @Argument(parsing: .allUnrecognized, help: "Overrides, --key=value (e.g. --num_iterations=100 --depth=6).")
    var overrides: [String] = []

    func run() throws {
        try runOnRanks(train(world:))
    }

    func train(world: World?) throws {
        let file = try loadConfig(config, overrides: overrides)
        let tokenizer = try Tokenizer.load(from: TrainingKeys.tokenizerDir(file))
        let settings = try TrainSettings.resolve(file, path: config, vocabSize: tokenizer.vocabSize, worldSize: world?.size ?? 1)
        if let world { try checkRanksAgree(world, settings, tokenizer) }
        let point: ResumePoint? = resumeStep.map { .step($0) } ?? (resume ? .latest : nil)
        let printing = world?.isRoot ?? true
        let run = try TrainingRun(settings: settings, tokenizer: tokenizer, resume: point, overwrite: overwrite, world: world) { line in
            guard printing else { return }
            print(line)
            fflush(nil)
        }
        let summary = try run.run()
        if world?.isRoot ?? true, let first = summary.evaluations.first, let last = summary.evaluations.last, summary.evaluations.count > 1 {
            print(String(format: "done: val bpb %.4f at step %d → %.4f at step %d; median %@ tok/s; checkpoints in %@",
                         first.bpb, first.step, last.bpb, last.step, TrainingRun.grouped(Int(summary.medianTokensPerSecond)),
                         settings.outputDir))
        }
    }
}

/// Every rank must run the same training: the same resolved settings (but threads and
/// paths) and model, the same tokenizer and the same executable. Rank 0's digests are compared with each rank's; any
/// difference stops the job naming the ranks.
func checkRanksAgree(_ world: World, _ settings: TrainSettings, _ tokenizer: Tokenizer) throws {
    var config = Digest()
    // Threads and paths may differ per rank (hosts mount data in different places).
    let local: Set<String> = ["threads", "data_dir", "tokenizer_dir", "output_dir"]
    let keys = settings.userConfig.keys.sorted().filter { !local.contains($0) }
    for key in keys { config.add(key); config.add(settings.userConfig[key]?.description ?? "") }
    for spec in settings.model.parameterSpecs { config.add(spec.name); config.add("\(spec.shape)") }
    config.add(tokenizer.identity)
    let all = world.gather((config.value, Digest.executable() ?? 0))
    let configs = all.indices.filter { all[$0].0 != all[0].0 }, binaries = all.indices.filter { all[$0].1 != all[0].1 }
    guard configs.isEmpty && binaries.isEmpty else {
        var what: [String] = []
        if !configs.isEmpty { what.append("rank(s) \(configs.map(String.init).joined(separator: ", ")) resolved other settings, model or tokenizer than rank 0") }
        if !binaries.isEmpty { what.append("rank(s) \(binaries.map(String.init).joined(separator: ", ")) run another nanochat executable than rank 0") }
        throw UserError("the ranks do not agree: \(what.joined(separator: "; ")); start every rank with the same binary, config and overrides")
    }
}

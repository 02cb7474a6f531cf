// `bench model`: forward, forward+backward, and full train step (forward, backward, clip,
// Muon + AdamW) of a whole model from a config file, in tokens per second.
import ArgumentParser
import Blocks
import Foundation
import Tensor
import Train

struct ModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "Forward, forward+backward and train-step tokens/s of models built from config files."
    )

    @Argument(help: "Config files (e.g. configs/hybrid_d12.py).")
    var configs: [String]

    @Option(help: "Vocabulary size (the tokenizer's).") var vocab: Int = 8192
    @Option(help: "Sequences per step.") var batch: Int = 4
    @Option(help: "Tokens per sequence.") var seq: Int = 512
    @Option(help: "Micro-batches per train step (gradient accumulation; Muon runs once per step).") var microBatches: Int = 1
    @OptionGroup var common: CommonOptions

    func run() throws {
        Parallel.setThreadCount(common.threads)
        print("# bench model\n")
        print(machineSummary(threads: common.threads))
        let peak = measureGemmPeak()
        print("\nB=\(batch) T=\(seq) V=\(vocab), train step of \(microBatches) micro-batch(es); median of \(common.runs) after one warm-up. MFU: nanochat's "
              + "estimate_flops per token × train-step tok/s ÷ the sgemm peak measured now, \(fmt(peak, 1)) GFLOPS (1024³, best of 5).\n")
        print("| config | pattern | params | forward tok/s | forward+backward tok/s | train step tok/s | train MFU | peak tensor memory |")
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        for path in configs {
            var file = try ConfigFile.load(path, schema: NanochatKeys.schema)
            try file.override("--max_seq_len=\(seq)")
            let config = try NanochatKeys.modelConfig(file, vocabSize: vocab)
            let model = try GPT(config: config, seed: 1)
            var g = SeededGenerator(seed: 2)
            let ids = IndexTensor(shape: [batch, seq], values: (0..<(batch * seq)).map { _ in Int32(g.next() % UInt64(vocab)) })
            let targets = IndexTensor(shape: [batch, seq], values: ids.values.map { ($0 + 1) % Int32(vocab) })
            let forward = timeRuns(runs: common.runs) { _ = GradMode.withoutGradients { model.loss(ids, targets: targets) } }
            BufferPool.shared.resetPeak()
            let step = timeRuns(runs: common.runs) {
                model.loss(ids, targets: targets).backward()
                for p in model.parameters.parameters { p.tensor.zeroGrad() }
            }
            let trainer = Trainer(model: model)
            let micro = Array(repeating: (x: ids, y: targets), count: microBatches)
            let train = timeRuns(runs: common.runs) { _ = try? trainer.step(micro, totalSteps: 1_000_000) }
            let tokens = Double(batch * seq), stepTokens = tokens * Double(microBatches)
            let name = (path as NSString).lastPathComponent
            print("| \(name) | \(config.blockPattern.map(\.rawValue).joined()) | \(fmt(Double(config.parameterCount) / 1e6))M | "
                  + "\(fmt(tokens / forward.median, 0)) | \(fmt(tokens / step.median, 0)) | \(fmt(stepTokens / train.median, 0)) | "
                  + "\(fmt(config.flopsPerToken * stepTokens / train.median / (peak * 1e9) * 100, 1))% | "
                  + "\(fmt(Double(BufferPool.shared.peakLiveBytes) / 1048576, 0)) MiB |")
        }
    }
}

// `bench tokenizer`: BPE training time on a corpus, and encoding throughput with one thread
// and with all, in the same run.
import ArgumentParser
import Foundation
import Tensor
import Train
import Tokenizer

struct TokenizerBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenizer",
        abstract: "BPE training seconds and encoding MB/s (1 thread vs all) on a text file."
    )

    @Option(help: "UTF-8 text to train on and encode.") var corpus = "data/tinyshakespeare.txt"
    @Option(help: "Vocabulary size.") var vocabSize = 4096
    @OptionGroup var common: CommonOptions

    func run() throws {
        guard let data = FileManager.default.contents(atPath: corpus) else { throw ValidationError("\(corpus): cannot read") }
        let text = try Tokenizer.validatedString([UInt8](data), source: corpus)
        let mb = Double(data.count) / 1e6
        print("# bench tokenizer\n")
        print(machineSummary(threads: common.threads))
        print("\n\(corpus): \(fmt(mb, 2)) MB, vocab \(vocabSize); median of \(common.runs) after one warm-up.\n")
        var tokenizer: Tokenizer?
        let train = timeRuns(runs: common.runs) { tokenizer = try? Tokenizer.train([text], vocabSize: vocabSize) }
        guard let tok = tokenizer else { throw ValidationError("training failed: vocab \(vocabSize) too large for \(corpus)?") }
        Parallel.setThreadCount(1)
        let one = timeRuns(runs: common.runs) { _ = tok.encode(text) }
        Parallel.setThreadCount(common.threads)
        let all = timeRuns(runs: common.runs) { _ = tok.encode(text) }
        let tokens = tok.encode(text).count
        print("| measurement | median | spread (min–max) | rate |")
        print("|---|---:|---:|---:|")
        print("| train \(vocabSize - 265) merges | \(fmt(train.median, 3)) s | \(fmt(train.min, 3))–\(fmt(train.max, 3)) s | \(fmt(mb / train.median, 2)) MB/s |")
        print("| encode, 1 thread | \(fmt(one.median * 1000, 1)) ms | \(fmt(one.min * 1000, 1))–\(fmt(one.max * 1000, 1)) ms | \(fmt(mb / one.median, 2)) MB/s |")
        print("| encode, \(common.threads) threads | \(fmt(all.median * 1000, 1)) ms | \(fmt(all.min * 1000, 1))–\(fmt(all.max * 1000, 1)) ms | \(fmt(mb / all.median, 2)) MB/s (\(fmt(one.median / all.median, 2))x) |")
        print("\n\(tokens) tokens, \(fmt(Double(data.count) / Double(tokens), 2)) bytes per token.")
    }
}

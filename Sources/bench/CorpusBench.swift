// `bench corpus`: the data pipeline at scale, against nanochat's own tools, in one run.
// Runs the nanochat executable beside this one (`tokenizer train`, then `prepare`) under
// /usr/bin/time for wall seconds and peak RSS, then nanochat's trainer (rustbpe) on the same
// documents; and compares encoding throughput per thread with tiktoken's on the same first
// megabytes of documents, the same ranks and pattern (tools/tokenizer_reference.py).
import ArgumentParser
import Corpus
import Foundation
import Tensor
import Train
import Tokenizer

struct CorpusBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "corpus",
        abstract: "tokenizer train and prepare on a corpus (seconds, peak RSS) against rustbpe and tiktoken.",
        discussion: "Make a corpus with tools/make_corpus.py; the reference side needs python3 with pyarrow, rustbpe and tiktoken."
    )

    @Option(parsing: .upToNextOption, help: "Corpus files or directories (parquet or .jsonl).") var input: [String]
    @Option(help: "Vocabulary size, special tokens included.") var vocabSize = 65536
    @Option(help: "Characters the tokenizer trains on.") var maxChars: Double = 1e9
    @Option(help: "Megabytes of documents for the encoding comparison.") var encodeMB = 64.0
    @Option(help: "Worker threads for tokenizer train and prepare.") var threads = ProcessInfo.processInfo.activeProcessorCount
    @Flag(help: "Leave out rustbpe and tiktoken.") var skipReference = false
    @Option(help: "Working directory for the tokenizer and shards (default: a temporary one, removed).") var work: String?

    struct Measured { let seconds: Double, peakMiB: Double, output: String }

    /// Runs a program under /usr/bin/time: its wall seconds and peak RSS.
    func measured(_ program: String, _ arguments: [String]) throws -> Measured {
        let report = NSTemporaryDirectory() + "nanochat-bench-time-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: report) }
        let log = try runChild("/usr/bin/time", ["-f", "%e %M", "-o", report, program] + arguments)
        let fields = (try? String(contentsOfFile: report, encoding: .utf8))?.split(whereSeparator: \.isWhitespace) ?? []
        guard fields.count >= 2, let seconds = Double(fields[fields.count - 2]), let kb = Double(fields[fields.count - 1]) else {
            throw ValidationError("/usr/bin/time gave no figures for \(program)")
        }
        return Measured(seconds: seconds, peakMiB: kb / 1024, output: log)
    }

    func json(_ output: String) throws -> [String: Any] {
        guard let line = output.split(separator: "\n").last(where: { $0.hasPrefix("{") }),
              let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw ValidationError("no JSON line in:\n\(output.suffix(1000))")
        }
        return object
    }

    func run() throws {
        let nanochat = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent("nanochat").path
        guard FileManager.default.isExecutableFile(atPath: nanochat) else {
            throw ValidationError("\(nanochat) not found; build it: swift build -c release --product nanochat")
        }
        let dir = work ?? NSTemporaryDirectory() + "nanochat-bench-corpus-\(getpid())"
        defer { if work == nil { try? FileManager.default.removeItem(atPath: dir) } }
        let files = try CorpusFile.expand(input)
        let diskBytes = files.reduce(0) { $0 + $1.size }
        print("# bench corpus\n")
        print(machineSummary(threads: threads))
        print("\n\(files.count) file(s), \(String(format: "%.2f", Double(diskBytes) / 1e9)) GB on disk; vocab \(vocabSize), "
              + "tokenizer on the first \(String(format: "%.3g", maxChars)) characters (documents cut at 10,000)\n")

        let tok = "\(dir)/tokenizer", data = "\(dir)/data"
        let ours = try measured(nanochat, ["tokenizer", "train", "--input"] + input + ["--vocab-size", "\(vocabSize)",
                                 "--max-chars", String(format: "%.0f", maxChars), "--out", tok, "--threads", "\(threads)"])
        let reference = skipReference ? nil : try measured("/usr/bin/env", ["python3", "tools/tokenizer_reference.py", "train",
            "--input"] + input + ["--vocab-size", "\(vocabSize)", "--max-chars", String(format: "%.0f", maxChars),
            "--tokenizer-json", "\(tok)/\(Tokenizer.infoFile)"])
        let prepare = try measured(nanochat, ["prepare", "--input"] + input + ["--tokenizer", tok, "--out", data,
                                    "--val-fraction", "0.01", "--threads", "\(threads)"])
        let index = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(data)/data.json"))) as? [String: Any]
        let tokens = ((index?["train_tokens"] as? Int) ?? 0) + ((index?["val_tokens"] as? Int) ?? 0)
        let textBytes = try files.reduce(0) { $0 + (try DataPreparation.textBytesEstimate($1, field: "text")) }

        // Encoding per thread, ours and tiktoken's, on the same first documents.
        let tokenizer = try Tokenizer.load(from: tok)
        let stream = DocumentStream(files: files)
        var docs: [String] = [], size = 0
        while Double(size) < encodeMB * 1e6, let d = try stream.next() { docs.append(d); size += d.utf8.count }
        Parallel.setThreadCount(1)
        let encode = timeRuns(runs: 3) { _ = tokenizer.encode(documents: docs) }
        let encodedTokens = tokenizer.encode(documents: docs).reduce(0) { $0 + $1.count }
        let tiktoken = skipReference ? nil : try json(try measured("/usr/bin/env", ["python3", "tools/tokenizer_reference.py", "encode",
            "--input"] + input + ["--tokenizer", tok, "--mb", "\(encodeMB)", "--threads", "1"]).output)

        print("| step | ours: seconds | ours: peak RSS | reference | reference: seconds | reference: peak RSS | ours ÷ reference time |")
        print("|---|---:|---:|---|---:|---:|---:|")
        let r = reference.map { ($0.seconds, $0.peakMiB) }
        print(String(format: "| tokenizer train, vocab %d | %.1f | %.0f MiB | rustbpe | %@ | %@ | %@ |", vocabSize, ours.seconds, ours.peakMiB,
                     r.map { String(format: "%.1f", $0.0) } ?? "-", r.map { String(format: "%.0f MiB", $0.1) } ?? "-",
                     r.map { String(format: "%.2fx", ours.seconds / $0.0) } ?? "-"))
        print(String(format: "| prepare (%d threads): ≈%.2f GB of text → %.0fM tokens, %.1f MB/s | %.1f | %.0f MiB | - | - | - | - |",
                     threads, Double(textBytes) / 1e9, Double(tokens) / 1e6, Double(textBytes) / 1e6 / prepare.seconds,
                     prepare.seconds, prepare.peakMiB))
        let mb = Double(size) / 1e6
        print(String(format: "\nEncoding %.1f MB (%d documents, %d tokens) on 1 thread: ours %.2f MB/s (median of 3)", mb, docs.count,
                     encodedTokens, mb / encode.median)
              + (tiktoken.map { t in
                  let s = (t["seconds"] as? Double) ?? .nan, tt = (t["tokens"] as? Int) ?? -1
                  return String(format: ", tiktoken %.2f MB/s (%d tokens): ours ÷ tiktoken %.2fx", mb / s, tt, s / encode.median)
              } ?? ""))
    }
}

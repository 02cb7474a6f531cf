// What a training run writes beside its checkpoints, as types: the rows of metrics.jsonl (one
// per step, one per evaluation) and the parts of meta_S.json that training adds (SPEC §3.4):
// the value of every training key, and the state a resumed run continues from.
import Blocks
import Foundation
import Tensor
import Tokenizer

/// One line of metrics.jsonl: a training step's figures or an evaluation's (the fields of the
/// other kind are absent).
public struct MetricsRow: Codable, Equatable, Sendable {
    /// Which kind of row: `train` (a step's figures) or `val` (an evaluation's). Rows
    /// written before the field existed have none; `isEvaluation` tells them apart by their
    /// fields.
    public var kind: String?
    /// After a training step: the steps taken so far. At an evaluation: the step evaluated.
    public var step: Int
    /// The step's mean loss, the smoothed loss (EMA 0.9, debiased), the LR multiplier, the
    /// step's time, tokens per second, MFU (%), and training seconds so far.
    public var loss, smoothLoss, lrm, dtMs, tokPerSec, mfu, elapsedS: Double?
    /// Validation loss (nats per token) and bits per byte.
    public var valLoss, valBPB: Double?
    /// A CORE evaluation's (kind `core`): the metric and each task's centred accuracy.
    public var coreMetric: Double? = nil
    public var centeredResults: [String: Double]? = nil

    enum CodingKeys: String, CodingKey {
        case kind, step, loss, smoothLoss = "smooth_loss", lrm, dtMs = "dt_ms", tokPerSec = "tok_per_sec", mfu
        case elapsedS = "elapsed_s", valLoss = "val_loss", valBPB = "val_bpb", coreMetric = "core_metric"
        case centeredResults = "centered_results"
    }

    /// Whether this row is an evaluation's.
    public var isEvaluation: Bool { kind.map { $0 == "val" } ?? (valLoss != nil) }

    public static func evaluation(step: Int, loss: Double, bpb: Double?) -> MetricsRow {
        MetricsRow(kind: "val", step: step, valLoss: loss, valBPB: bpb)
    }
}

/// metrics.jsonl: one JSON object per line.
public enum MetricsFile {
    /// Every row of `path`; a line that is not a row is an error naming the file and line.
    public static func read(_ path: String) throws -> [MetricsRow] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw TrainingError("\(path): cannot read the run's metrics")
        }
        let decoder = JSONDecoder()
        return try text.split(separator: "\n").enumerated().map { n, line in
            guard let row = try? decoder.decode(MetricsRow.self, from: Data(line.utf8)) else {
                throw TrainingError("\(path):\(n + 1): not a metrics row")
            }
            return row
        }
    }

    /// One row as a line of JSON (keys sorted).
    static func line(_ row: MetricsRow) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return try encoder.encode(row) + Data("\n".utf8)
    }

    /// Starts `path` afresh, or with the rows of `source` up to `step` (a resumed run drops
    /// what the interrupted one wrote after its checkpoint, including a line cut short by a
    /// kill). `source` is `path` itself, or the metrics a run replaces at its first save.
    static func start(_ path: String, from source: String, after step: Int, fresh: Bool) throws {
        var kept = Data()
        if !fresh, let text = try? String(contentsOfFile: source, encoding: .utf8) {
            let decoder = JSONDecoder()
            for line in text.split(separator: "\n") {
                guard let row = try? decoder.decode(MetricsRow.self, from: Data(line.utf8)), row.step <= step else { continue }
                kept += Data(line.utf8) + Data("\n".utf8)
            }
        }
        try AtomicFile.write(kept, to: path)
    }

    /// Appends one row. A write that fails part-way (a full disk) is cut back off, so the
    /// file never ends in a torn line; the error names the file and the reason. `write` puts
    /// the line's bytes into the open file, returning an errno on failure: the file system's
    /// own write, or a stand-in where a test makes the disk fill up.
    public static func append(_ row: MetricsRow, to path: String,
                              write: (_ fd: Int32, _ bytes: Data) -> Int32? = { AtomicFile.writeAll($0, $1) }) throws {
        let data = try line(row)
        let fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
        guard fd >= 0 else { throw TrainingError("\(path): cannot open the metrics file to append to it: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let start = lseek(fd, 0, SEEK_END)
        if let failure = write(fd, data) {
            if start >= 0 { ftruncate(fd, start) }
            throw TrainingError("\(path): cannot append to the metrics file: \(String(cString: strerror(failure)))")
        }
    }
}

/// Where a run stands at a checkpoint: what it needs to continue bit for bit.
public struct ResumeState: Codable, Equatable, Sendable {
    /// Token offset of the next micro-batch in the train stream, and full passes over it so far.
    public var trainPosition: Int, epoch: Int
    /// The loss EMA before debiasing, and training seconds so far.
    public var smoothLoss: Double, elapsedSeconds: Double
    /// The run's horizon when it saved.
    public var numIterations: Int
    /// The same position as a shard index and an offset in it, and the train stream's length
    /// (a resume on other data is refused); absent in checkpoints from before sharded data.
    public var trainShard: Int?, shardOffset: Int?, trainTokens: Int?

    public init(trainPosition: Int, epoch: Int, smoothLoss: Double, elapsedSeconds: Double, numIterations: Int,
                trainShard: Int? = nil, shardOffset: Int? = nil, trainTokens: Int? = nil) {
        self.trainPosition = trainPosition; self.epoch = epoch; self.smoothLoss = smoothLoss
        self.elapsedSeconds = elapsedSeconds; self.numIterations = numIterations
        self.trainShard = trainShard; self.shardOffset = shardOffset; self.trainTokens = trainTokens
    }

    enum CodingKeys: String, CodingKey {
        case trainPosition = "train_position", epoch, smoothLoss = "smooth_loss"
        case elapsedSeconds = "elapsed_seconds", numIterations = "num_iterations"
        case trainShard = "train_shard", shardOffset = "shard_offset", trainTokens = "train_tokens"
    }
}

/// The keys training adds to meta_S.json (beside `step` and `model_config`).
public struct TrainingMeta: Codable, Sendable {
    /// Validation bits per byte at this step, if evaluated.
    public var valBPB: Double?
    /// Every training key with the value used.
    public var userConfig: [String: ConfigValue]
    /// Absent in a checkpoint written by `nanochat init`.
    public var resume: ResumeState?
    /// The tokenizer's directory, relative to the checkpoint's.
    public var tokenizerDir: String?
    /// The tokenizer's identity (`Tokenizer.identity`), when the run had one.
    public var tokenizerHash: String?

    enum CodingKeys: String, CodingKey {
        case valBPB = "val_bpb", userConfig = "user_config", resume, tokenizerDir = "tokenizer_dir"
        case tokenizerHash = "tokenizer_hash"
    }

    public init(valBPB: Double?, userConfig: [String: ConfigValue], resume: ResumeState?, tokenizerDir: String?,
                tokenizerHash: String? = nil) {
        self.valBPB = valBPB; self.userConfig = userConfig; self.resume = resume; self.tokenizerDir = tokenizerDir
        self.tokenizerHash = tokenizerHash
    }

    /// val_bpb is written as null when there is none (nanochat's meta files hold the key).
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(valBPB, forKey: .valBPB)
        try c.encode(userConfig, forKey: .userConfig)
        try c.encodeIfPresent(resume, forKey: .resume)
        try c.encodeIfPresent(tokenizerDir, forKey: .tokenizerDir)
        try c.encodeIfPresent(tokenizerHash, forKey: .tokenizerHash)
    }
}

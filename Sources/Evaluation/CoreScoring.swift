// Scoring CORE's items with a model, as nanochat's core_eval does: an item's prompts run as
// one batch padded with <|bos|> on the right, the loss of every position is the cross entropy
// of its next token (the last position has none: NaN), and
//   multiple choice, schema: the prediction is the prompt whose scored tokens have the lowest
//                            mean loss (the first such, a NaN mean never replacing it);
//   language modelling:      correct when the greedy token equals the next one at every
//                            scored position.
// Only the positions a slice reads go through the head, so a long prompt's logits over a large
// vocabulary are never all held at once.
import Blocks
import Foundation
import Inference
import Tensor
import Tokenizer

public struct CoreExampleResult: Sendable {
    public var batch: CorePromptBatch
    /// Multiple choice and schema: each prompt's mean loss over its scored tokens.
    public var meanLosses: [Double]
    /// Multiple choice and schema: the prompt chosen; nil for language modelling.
    public var predicted: Int?
    public var correct: Bool
}

public struct CoreTaskResult: Sendable {
    public let task: CoreTask
    /// Examples evaluated (after --max-per-task) and how many were correct.
    public let examples: Int, correct: Int
    public var accuracy: Double { examples == 0 ? 0 : Double(correct) / Double(examples) }
    /// Accuracy rescaled so guessing scores 0 and every item right 1.
    public var centered: Double { CoreScoring.centered(accuracy, baseline: task.randomBaseline) }
    public init(task: CoreTask, examples: Int, correct: Int) { self.task = task; self.examples = examples; self.correct = correct }
}

public enum CoreScoring {
    /// (accuracy − baseline/100) / (1 − baseline/100), as nanochat centres each task.
    public static func centered(_ accuracy: Double, baseline: Double) -> Double {
        (accuracy - 0.01 * baseline) / (1 - 0.01 * baseline)
    }

    /// The CORE metric: the mean of the tasks' centred accuracies.
    public static func core(_ results: [CoreTaskResult]) -> Double {
        results.isEmpty ? 0 : results.map(\.centered).reduce(0, +) / Double(results.count)
    }

    /// Python's `range(length)[lo:hi]`: negative bounds count from the end, then both are
    /// clamped (nanochat slices its loss rows so, even where a bound comes out negative).
    public static func slice(_ lo: Int, _ hi: Int, length: Int) -> Range<Int> {
        func clamp(_ i: Int) -> Int { Swift.min(length, Swift.max(0, i < 0 ? i + length : i)) }
        let a = clamp(lo), b = clamp(hi)
        return a..<Swift.max(a, b)
    }

    /// Example `index` of `examples` (the task's, in evaluation order), with its few-shot
    /// examples, rendered, tokenized and scored.
    public static func evaluate(_ examples: [CoreExample], index: Int, task: CoreTask, model: GPT, tokenizer: Tokenizer) throws -> CoreExampleResult {
        let batch = try prompts(examples, index: index, task: task, tokenizer: tokenizer)
        return score(batch, item: examples[index].item, type: task.type, model: model, bos: tokenizer.bosID)
    }

    /// Example `index`'s prompts after its few-shot examples, as ids and scored spans.
    public static func prompts(_ examples: [CoreExample], index: Int, task: CoreTask, tokenizer: Tokenizer) throws -> CorePromptBatch {
        let shots = CorePrompts.fewShotIndices(index: index, count: examples.count, shots: task.fewShot).map { examples[$0].item }
        let prompts = CorePrompts.render(examples[index].item, fewShot: shots, delimiter: task.delimiter)
        do {
            return try CorePrompts.batch(prompts, type: task.type, tokenizer: tokenizer)
        } catch let e as CoreBundleError {
            throw CoreBundleError("\(examples[index].source) (task \"\(task.label)\"): \(e.message)")
        }
    }

    /// Scores a batch of prompts (see the file's comment).
    public static func score(_ batch: CorePromptBatch, item: CoreItem, type: CoreTaskType, model: GPT, bos: Int32) -> CoreExampleResult {
        let rows = batch.tokens.count, length = batch.tokens.map(\.count).max() ?? 0
        let ids = batch.tokens.flatMap { $0 + Array(repeating: bos, count: length - $0.count) }
        // The positions each row's slices read.
        let spans = (0..<rows).map { slice(batch.starts[$0] - 1, batch.ends[$0] - 1, length: length) }
        var wanted: [(row: Int, position: Int)] = []
        for (r, span) in spans.enumerated() { for t in span { wanted.append((r, t)) } }
        let scored = positionScores(model, ids: ids, rows: rows, length: length, positions: wanted)
        var at = 0
        switch type {
        case .multipleChoice, .schema:
            var means: [Double] = []
            for span in spans {
                var sum = 0.0
                for _ in span { sum += scored[at].loss; at += 1 }
                means.append(span.isEmpty ? .nan : sum / Double(span.count))
            }
            var best = 0
            for i in means.indices.dropFirst() where means[i] < means[best] { best = i }
            let gold: Int
            switch item {
            case .multipleChoice(_, _, let g), .schema(_, _, let g): gold = g
            case .languageModeling: gold = -1
            }
            return CoreExampleResult(batch: batch, meanLosses: means, predicted: best, correct: best == gold)
        case .languageModeling:
            // predictions[si-1 ..< ei-1] against the ids at si ..< ei.
            let actual = slice(batch.starts[0], batch.ends[0], length: length)
            var correct = actual.count == spans[0].count
            if correct {
                for (k, t) in actual.enumerated() where scored[k].argmax != ids[t] { correct = false; break }
            }
            return CoreExampleResult(batch: batch, meanLosses: [], predicted: nil, correct: correct)
        }
    }

    /// For each (row, position) of a padded batch of ids: the cross entropy of the next id
    /// (NaN at the last position, where there is none) and the most likely id (the first
    /// of equals, as torch.argmax).
    static func positionScores(_ model: GPT, ids: [Int32], rows: Int, length: Int, positions: [(row: Int, position: Int)]) -> [(loss: Double, argmax: Int32)] {
        guard !positions.isEmpty else { return [] }
        return GradMode.withoutGradients {
            let logits = positionLogits(model, ids: ids, rows: rows, length: length, positions: positions)
            let v = model.config.vocabSize
            // TokenScore's top token is the first of equals, as torch.argmax's.
            func rowsOf<S: TensorScalar & BinaryFloatingPoint>(_ all: UnsafeMutableBufferPointer<S>) -> [(loss: Double, argmax: Int32)] {
                positions.enumerated().map { k, p in
                    let row = UnsafeBufferPointer(rebasing: all[(k * v)..<((k + 1) * v)])
                    let last = p.position + 1 >= length
                    let s = TokenScore(logits: row, token: last ? 0 : ids[p.row * length + p.position + 1], top: 1)
                    return (last ? .nan : -s.logprob, s.top[0].token)
                }
            }
            switch logits.dtype {
            case .float32: return rowsOf(logits.buffer(Float.self))
            case .float64: return rowsOf(logits.buffer(Double.self))
            }
        }
    }

    /// The logits (positions.count, V) at chosen (row, position)s of a padded batch of ids:
    /// the whole batch through the blocks, only those positions through the head.
    static func positionLogits(_ model: GPT, ids: [Int32], rows: Int, length: Int, positions: [(row: Int, position: Int)]) -> Tensor {
        GradMode.withoutGradients {
            let hidden = model.hidden(IndexTensor(shape: [rows, length], values: ids))
            let width = hidden.shape[hidden.shape.count - 1]
            let picked = Tensor(uninitializedShape: [positions.count, width], dtype: hidden.dtype)
            func gather<S: TensorScalar>(_: S.Type) {
                let src = hidden.data(S.self), dst = picked.data(S.self)
                for (k, p) in positions.enumerated() {
                    (dst + k * width).update(from: src + (p.row * length + p.position) * width, count: width)
                }
            }
            switch hidden.dtype {
            case .float32: gather(Float.self)
            case .float64: gather(Double.self)
            }
            return softcap(linear(picked, model.weights.head), logitSoftcap)
        }
    }

    /// Evaluates the examples at `indices` of a task (all of them, or one rank's share);
    /// `each` sees every result as it comes.
    public static func evaluate(_ examples: [CoreExample], task: CoreTask, indices: [Int], model: GPT, tokenizer: Tokenizer,
                                each: (Int, CoreExampleResult) -> Void = { _, _ in }) throws -> Int {
        var correct = 0
        for i in indices {
            let r = try evaluate(examples, index: i, task: task, model: model, tokenizer: tokenizer)
            if r.correct { correct += 1 }
            each(i, r)
        }
        return correct
    }
}

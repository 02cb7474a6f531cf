// Picking the next token from logits: greedy, or softmax with temperature over the top k
// tokens and then the smallest set whose probability reaches top_p (nucleus sampling).
import Foundation
import Tensor

public struct Sampler: Sendable {
    public let temperature: Double, topK: Int, topP: Double
    var rng: SeededGenerator

    /// topK 0 keeps every token; topP 1 keeps every token the top-k leaves.
    public init(temperature: Double, topK: Int, topP: Double = 1, seed: UInt64) {
        self.temperature = temperature; self.topK = topK; self.topP = topP
        rng = SeededGenerator(seed: seed)
    }

    /// The chosen index of `logits` (a model's vocabulary: never empty). Temperature 0 takes
    /// the largest (lowest index on ties).
    public mutating func pick(_ logits: [Double]) -> Int {
        precondition(!logits.isEmpty, "a sampler picks from at least one logit")
        if temperature == 0 {
            var best = 0
            for i in logits.indices where logits[i] > logits[best] { best = i }
            return best
        }
        var order = Array(logits.indices)
        let nucleus = topP > 0 && topP < 1
        if (topK > 0 && topK < logits.count) || nucleus {
            order.sort { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
            if topK > 0 { order = Array(order.prefix(topK)) }
        }
        let m = order.lazy.map { logits[$0] }.max() ?? 0
        var weights = order.map { exp((logits[$0] - m) / temperature) }
        if nucleus {
            // Highest first: keep tokens until their share reaches top_p (at least one).
            let total = weights.reduce(0, +)
            var kept = 0, sum = 0.0
            while kept < weights.count && (kept == 0 || sum < topP * total) { sum += weights[kept]; kept += 1 }
            order = Array(order.prefix(kept)); weights = Array(weights.prefix(kept))
        }
        var u = rng.nextUnit() * weights.reduce(0, +)
        for (i, w) in zip(order, weights) {
            u -= w
            if u < 0 { return i }
        }
        return order[order.count - 1]
    }
}

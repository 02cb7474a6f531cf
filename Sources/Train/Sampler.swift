// Picking the next token from logits: greedy, or softmax with temperature over the top k.
import Foundation
import Tensor

public struct Sampler {
    public let temperature: Double, topK: Int
    var rng: SeededGenerator

    public init(temperature: Double, topK: Int, seed: UInt64) {
        self.temperature = temperature; self.topK = topK
        rng = SeededGenerator(seed: seed)
    }

    /// The chosen index of `logits`. Temperature 0 takes the largest (lowest index on ties).
    public mutating func pick(_ logits: [Double]) -> Int {
        var order = Array(logits.indices)
        if temperature == 0 { return order.max { logits[$0] < logits[$1] || (logits[$0] == logits[$1] && $0 > $1) }! }
        if topK > 0 && topK < logits.count {
            order.sort { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
            order = Array(order.prefix(topK))
        }
        let m = order.map { logits[$0] }.max()!
        let weights = order.map { exp((logits[$0] - m) / temperature) }
        var u = rng.nextUnit() * weights.reduce(0, +)
        for (i, w) in zip(order, weights) {
            u -= w
            if u < 0 { return i }
        }
        return order.last!
    }
}

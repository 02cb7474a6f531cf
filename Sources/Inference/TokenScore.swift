// Log-probabilities of tokens under the model: the token that came (a prompt's next token, or
// the one drawn) and the most likely ones at its position. Always of the model's own
// distribution, the softmax of its softcapped logits at temperature 1, whatever the sampler
// then does with them (temperature, top-k, a logit bias, penalties): what OpenAI's `logprobs`
// report, and what an evaluation harness adds up to score a continuation.
import Foundation

public struct TokenScore: Sendable, Equatable {
    public struct Alternative: Sendable, Equatable {
        public var token: Int32
        public var logprob: Double
        public init(token: Int32, logprob: Double) { self.token = token; self.logprob = logprob }
    }

    /// The token at this position and its log-probability.
    public var token: Int32
    public var logprob: Double
    /// The most likely tokens at this position, most likely first (lower id first on ties).
    public var top: [Alternative]

    public init(token: Int32, logprob: Double, top: [Alternative]) {
        self.token = token; self.logprob = logprob; self.top = top
    }

    /// Scores `token` against one position's logits, with the `top` most likely tokens.
    public init<C: Collection>(logits row: C, token: Int32, top: Int) where C.Element: BinaryFloatingPoint, C.Index == Int {
        var m = -Double.infinity
        for x in row { m = Swift.max(m, Double(x)) }
        var sum = 0.0
        for x in row { sum += Foundation.exp(Double(x) - m) }
        let logZ = m + Foundation.log(sum)
        self.token = token
        logprob = Double(row[row.startIndex + Int(token)]) - logZ
        self.top = TokenScore.largest(row, count: top).map { Alternative(token: Int32($0), logprob: Double(row[row.startIndex + $0]) - logZ) }
    }

    /// Indices of the `count` largest values, largest first (lower index first on ties).
    static func largest<C: Collection>(_ row: C, count: Int) -> [Int] where C.Element: BinaryFloatingPoint, C.Index == Int {
        let k = Swift.min(count, row.count)
        guard k > 0 else { return [] }
        var best: [(index: Int, value: Double)] = []
        best.reserveCapacity(k + 1)
        for (i, x) in row.enumerated() {
            let v = Double(x)
            if best.count == k, let last = best.last, v <= last.value { continue }
            // The insertion point: after every kept value at least as large (ties keep the lower index first).
            var at = best.count
            while at > 0 && best[at - 1].value < v { at -= 1 }
            best.insert((i, v), at: at)
            if best.count > k { best.removeLast() }
        }
        return best.map(\.index)
    }
}

// Scoring a chat model on the benchmarks of ChatTaskFiles.swift as nanochat's chat_eval
// scores it:
//
// - The prompt is the conversation without its reference reply, rendered as in training,
//   then <|assistant_start|> (nanochat's render_for_completion, cut to 2048 tokens first).
// - Categorical (ARC, MMLU): batches of prompts padded with <|bos|> after their ends, one
//   forward; at each prompt's last position only the logits of its answer letters count, and
//   the first largest is the model's answer.
// - Generative (GSM8K, HumanEval): a greedy reply as nanochat's engine makes it (several
//   problems' replies decoded together, one batched product per token): up to
//   `maxTokens` tokens (a calculator answer forced into the reply counts one per token),
//   ending at <|assistant_end|> or <|bos|>; the reply's text (special tokens by their names)
//   is checked by the task: GSM8K compares the number after "#### " with the reference's,
//   HumanEval runs the program with the task's tests (`PythonSandbox`).
import Blocks
import Foundation
import Inference
import Tensor
import Tokenizer

/// One problem's outcome.
public struct ChatProblemResult: Sendable {
    /// The problem's position in the evaluated order.
    public let index: Int
    public let prompt: [Int32]
    /// The letter chosen, or the reply's text.
    public let answer: String
    /// Generative: the reply's tokens (without the ending token).
    public let reply: [Int32]
    public let correct: Bool
    /// Why a HumanEval program failed (its error's last line), or nil.
    public let failure: String?
    /// Categorical: the logits of the answer letters, in the problem's order.
    public var letterLogits: [Double] = []
}

public enum ChatTaskScoring {
    /// Longest rendering of the conversation before <|assistant_start|>, as nanochat's
    /// render_conversation cuts it.
    public static let renderLimit = 2048

    /// The prompt the model answers: the conversation without its reference reply.
    public static func prompt(_ problem: ChatProblem, tokenizer: Tokenizer) throws -> [Int32] {
        var conversation = problem.conversation
        conversation.messages.removeLast()
        return try tokenizer.render(conversation, maxTokens: renderLimit).ids + [ChatTokens(tokenizer).assistantStart]
    }

    /// The token of each answer letter; a letter that is not one token is an error (nanochat
    /// asserts the same).
    static func letterTokens(_ letters: [String], tokenizer: Tokenizer, at: String) throws -> [Int32] {
        try letters.map { letter in
            let ids = tokenizer.encode(letter)
            guard ids.count == 1 else {
                throw ChatTaskError("\(at): the answer letter \"\(letter)\" is \(ids.count) tokens with this tokenizer; categorical scoring needs one")
            }
            return ids[0]
        }
    }

    /// Categorical problems scored in one padded batch (`indices` are their positions in
    /// the evaluated order, for the results).
    public static func categorical(_ problems: [ChatProblem], indices: [Int], model: GPT, tokenizer: Tokenizer) throws -> [ChatProblemResult] {
        guard !problems.isEmpty else { return [] }
        let prompts = try problems.map { try prompt($0, tokenizer: tokenizer) }
        let letterIDs = try problems.map { try letterTokens($0.letters, tokenizer: tokenizer, at: $0.source) }
        let length = prompts.map(\.count).max() ?? 0
        let bos = ChatTokens(tokenizer).bos
        let ids = prompts.flatMap { $0 + Array(repeating: bos, count: length - $0.count) }
        let positions = prompts.enumerated().map { (row: $0.offset, position: $0.element.count - 1) }
        let logits = CoreScoring.positionLogits(model, ids: ids, rows: prompts.count, length: length, positions: positions)
        let v = model.config.vocabSize
        func value(_ row: Int, _ token: Int32) -> Double {
            switch logits.dtype {
            case .float32: Double(logits.data(Float.self)[row * v + Int(token)])
            case .float64: logits.data(Double.self)[row * v + Int(token)]
            }
        }
        return problems.enumerated().map { row, problem in
            // The first of equal largest, as torch.argmax.
            var best = 0
            for j in letterIDs[row].indices where value(row, letterIDs[row][j]) > value(row, letterIDs[row][best]) { best = j }
            let answer = problem.letters[best]
            return ChatProblemResult(index: indices[row], prompt: prompts[row], answer: answer, reply: [],
                                     correct: answer == problem.reference, failure: nil,
                                     letterLogits: letterIDs[row].map { value(row, $0) })
        }
    }

    /// The greedy replies to prompts, as nanochat's engine generates each with temperature
    /// 0: every prompt prefilled on its own, then one token per step for all unfinished
    /// replies together (one batched product per step; a reply's tokens do not depend on the
    /// others in its batch, beyond float rounding of the batched products).
    public static func greedyReplies(_ prompts: [[Int32]], model: GPT, tokenizer: Tokenizer, maxTokens: Int) -> [[Int32]] {
        let special = ChatTokens(tokenizer)
        struct Reply {
            let sequence: DecodingSequence
            var decoder: ReplyDecoder
            var logits: [Double]
            var tokens: [Int32] = [], forced: [Int32] = []
            var generated = 0, finished = false
        }
        var replies = prompts.map { prompt -> Reply in
            let sequence = DecodingSequence(model: model, sampler: Sampler(temperature: 0, topK: 0, seed: 0),
                                            expectedTokens: prompt.count + maxTokens)
            return Reply(sequence: sequence, decoder: ReplyDecoder(tokenizer: tokenizer, special: special), logits: sequence.feed(prompt))
        }
        while true {
            var stepping: [Int] = [], next: [Int32] = []
            for i in replies.indices where !replies[i].finished {
                guard replies[i].generated < maxTokens else { replies[i].finished = true; continue }
                replies[i].generated += 1
                let token: Int32
                if replies[i].forced.isEmpty {
                    token = replies[i].sequence.pick(replies[i].logits)
                    switch replies[i].decoder.step(token) {
                    case .end: replies[i].finished = true; continue
                    case .text: break
                    case .tool(_, _, let answer): replies[i].forced = answer
                    }
                } else {
                    token = replies[i].forced.removeFirst()
                }
                replies[i].tokens.append(token)
                if replies[i].generated < maxTokens { stepping.append(i); next.append(token) } else { replies[i].finished = true }
            }
            guard !stepping.isEmpty else { break }
            let logits = DecodingSequence.step(stepping.map { replies[$0].sequence }, tokens: next)
            for (i, l) in zip(stepping, logits) { replies[i].logits = l }
        }
        return replies.map(\.tokens)
    }

    /// Generative problems, their greedy replies decoded together, each checked by its task.
    public static func generative(_ problems: [ChatProblem], indices: [Int], benchmark: ChatBenchmark, model: GPT, tokenizer: Tokenizer,
                                  maxTokens: Int, sandbox: PythonSandbox?) throws -> [ChatProblemResult] {
        if benchmark == .humanEval && sandbox == nil { throw ChatTaskError("HumanEval needs a sandbox to run programs in") }
        guard !benchmark.isCategorical else { throw ChatTaskError("\(benchmark.rawValue) is categorical") }
        let prompts = try problems.map { try prompt($0, tokenizer: tokenizer) }
        let replies = greedyReplies(prompts, model: model, tokenizer: tokenizer, maxTokens: maxTokens)
        return try problems.indices.map { k in
            let text = try tokenizer.decode(replies[k])
            let (correct, failure) = try judge(problems[k], reply: text, benchmark: benchmark, sandbox: sandbox)
            return ChatProblemResult(index: indices[k], prompt: prompts[k], answer: text, reply: replies[k], correct: correct, failure: failure)
        }
    }

    /// A generative problem's reply judged by its task: GSM8K's number after "#### " against
    /// the one in the reference's last part, when that part is text (as nanochat reads it);
    /// HumanEval's program run in the sandbox, with the reason it failed.
    public static func judge(_ problem: ChatProblem, reply: String, benchmark: ChatBenchmark,
                             sandbox: PythonSandbox?) throws -> (correct: Bool, failure: String?) {
        switch benchmark {
        case .gsm8k:
            var last = ""
            if case .text(let s)? = problem.conversation.messages.last?.parts.last { last = s }
            return (finalAnswer(reply) == finalAnswer(last), nil)
        case .humanEval:
            guard let sandbox else { throw ChatTaskError("HumanEval needs a sandbox to run programs in") }
            let outcome = sandbox.run(humanEvalProgram(problem, reply: reply))
            return (outcome.passed, outcome.failure)
        case .arcEasy, .arcChallenge, .mmlu:
            throw ChatTaskError("\(benchmark.rawValue) is categorical")
        }
    }

    /// The number after the first "#### " (a minus sign, digits, dots and commas; commas
    /// dropped), as GSM8K's own grader reads it; nil if there is none.
    public static func finalAnswer(_ text: String) -> String? {
        let scalars = text.unicodeScalars
        var i = scalars.startIndex
        func allowed(_ c: Unicode.Scalar) -> Bool { ("0"..."9").contains(c) || c == "." || c == "," }
        while let start = scalars[i...].firstRange(of: "#### ".unicodeScalars) {
            var j = start.upperBound
            var number = String.UnicodeScalarView()
            if j < scalars.endIndex, scalars[j] == "-" { number.append("-"); j = scalars.index(after: j) }
            while j < scalars.endIndex, allowed(scalars[j]) { number.append(scalars[j]); j = scalars.index(after: j) }
            // The pattern needs at least one character after the optional minus sign.
            if number.count > (number.first == "-" ? 1 : 0) {
                return String(number).replacingOccurrences(of: ",", with: "")
            }
            i = scalars.index(after: start.lowerBound)
        }
        return nil
    }

    /// HumanEval's program for a reply: the prompt's imports, the reply's first fenced code
    /// block (or the whole reply), the tests, and the call of `check` on the entry point.
    public static func humanEvalProgram(_ problem: ChatProblem, reply: String) -> String {
        imports(problem.question) + "\n\n" + program(in: reply) + "\n\n" + problem.test + "\n" + "check(\(problem.entryPoint))"
    }

    /// The import lines at the top of a prompt (stopping at its first other line that is not
    /// a comment), stripped.
    static func imports(_ prompt: String) -> String {
        var lines: [String] = []
        for line in prompt.split(separator: "\n", omittingEmptySubsequences: false) {
            let stripped = CorePrompts.pythonStrip(String(line))
            if stripped.hasPrefix("import ") || stripped.hasPrefix("from ") {
                lines.append(stripped)
            } else if !stripped.isEmpty && !stripped.hasPrefix("#") {
                break
            }
        }
        return lines.joined(separator: "\n")
    }

    /// The code of a reply: the inside of its first ```python or ``` block (the fence, any
    /// whitespace, a newline, the code, a newline, the closing fence), stripped; else the
    /// whole reply stripped.
    static func program(in reply: String) -> String {
        let s = reply.unicodeScalars
        var from = s.startIndex
        while let open = s[from...].firstRange(of: "```".unicodeScalars) {
            var j = open.upperBound
            if s[j...].starts(with: "python".unicodeScalars) {
                // "python" is optional: try with it, then without (the regex backtracks).
                if let code = fencedCode(s, after: s.index(j, offsetBy: 6)) { return CorePrompts.pythonStrip(code) }
            }
            if let code = fencedCode(s, after: j) { return CorePrompts.pythonStrip(code) }
            j = s.index(after: open.lowerBound)
            from = j
        }
        return CorePrompts.pythonStrip(reply)
    }

    /// After an opening fence: `\s*\n(.*?)\n````. The whitespace run gives back characters
    /// until a newline ends it, longest first; the code is the shortest text that "\n```"
    /// follows.
    private static func fencedCode(_ s: String.UnicodeScalarView, after start: String.UnicodeScalarView.Index) -> String? {
        var starts: [String.UnicodeScalarView.Index] = []
        var k = start
        while k < s.endIndex, isRegexSpace(s[k]) {
            if s[k] == "\n" { starts.append(s.index(after: k)) }
            k = s.index(after: k)
        }
        for codeStart in starts.reversed() {
            if let close = s[codeStart...].firstRange(of: "\n```".unicodeScalars) {
                return String(s[codeStart..<close.lowerBound])
            }
        }
        return nil
    }

    /// Python's `\s` in a str pattern: the Unicode whitespace `str.isspace` accepts.
    static func isRegexSpace(_ c: Unicode.Scalar) -> Bool { CorePrompts.isPythonSpace(c) }
}

/// A benchmark's accuracy over the problems evaluated.
public struct ChatBenchmarkResult: Sendable {
    public let benchmark: ChatBenchmark
    /// Every problem's outcome, in the evaluated order.
    public let outcomes: [Bool]
    /// The problems this process scored (all of them, or under MPI one batch in N).
    public let problems: [ChatProblemResult]
    public init(benchmark: ChatBenchmark, outcomes: [Bool], problems: [ChatProblemResult]) {
        self.benchmark = benchmark; self.outcomes = outcomes; self.problems = problems
    }
    public var correct: Int { outcomes.filter { $0 }.count }
    public var total: Int { outcomes.count }
    public var accuracy: Double { total > 0 ? Double(correct) / Double(total) : 0 }
    /// (accuracy - baseline) / (1 - baseline), as nanochat centres its ChatCORE terms.
    public var centered: Double { (accuracy - benchmark.baseline) / (1 - benchmark.baseline) }
}

extension ChatTaskScoring {
    /// Every problem of `problems` (already in the evaluated order), `batchSize` at a time
    /// (categorical: one forward pass; generative: replies decoded together); `each` sees
    /// every result as it comes.
    /// `batches` picks which batches this process scores, in increasing order (batch b holds
    /// problems b·batchSize ..< (b+1)·batchSize; default all); the result's outcomes are then
    /// those of its own problems, false elsewhere, for the caller to add up over ranks.
    public static func evaluate(_ benchmark: ChatBenchmark, problems: [ChatProblem], model: GPT, tokenizer: Tokenizer,
                                batchSize: Int = 8, maxTokens: Int = 512, sandbox: PythonSandbox? = nil,
                                batches: StrideTo<Int>? = nil,
                                each: (ChatProblemResult) -> Void = { _ in }) throws -> ChatBenchmarkResult {
        var results: [ChatProblemResult] = []
        let size = Swift.max(1, batchSize), count = (problems.count + size - 1) / size
        for b in batches ?? stride(from: 0, to: count, by: 1) {
            guard b < count else { break }
            let start = b * size, end = Swift.min(problems.count, start + size)
            let batch = Array(problems[start..<end]), indices = Array(start..<end)
            let scored = benchmark.isCategorical
                ? try categorical(batch, indices: indices, model: model, tokenizer: tokenizer)
                : try generative(batch, indices: indices, benchmark: benchmark, model: model, tokenizer: tokenizer,
                                 maxTokens: maxTokens, sandbox: sandbox)
            for r in scored { results.append(r); each(r) }
        }
        var outcomes = [Bool](repeating: false, count: problems.count)
        for r in results { outcomes[r.index] = r.correct }
        return ChatBenchmarkResult(benchmark: benchmark, outcomes: outcomes, problems: results)
    }
}

// How often a model answers held-out questions of a chat task right: each question asked in a
// fresh conversation, the reply decoded greedily (with the calculator, as in chat), and graded
// by whether its text holds the expected answer as a whole number or phrase (and, for
// spelling, names the word asked about).
import Blocks
import Foundation
import Tokenizer
import Inference

public struct ChatAccuracy: Sendable {
    public let task: ChatTask
    public let correct: Int, total: Int
    /// A few (question, reply, expected) for the report.
    public let examples: [(question: String, reply: String, expected: String)]
    public var rate: Double { total > 0 ? Double(correct) / Double(total) : 0 }
}

public enum ChatEvaluation {
    /// Whether `reply` contains `expected` not as part of a longer number or word.
    public static func contains(_ reply: String, _ expected: String) -> Bool {
        var search = reply[...]
        while let r = search.range(of: expected) {
            let before = r.lowerBound == reply.startIndex ? nil : reply[reply.index(before: r.lowerBound)]
            let after = r.upperBound == reply.endIndex ? nil : reply[r.upperBound]
            let inside: (Character?) -> Bool = { c in c.map { $0.isNumber || $0.isLetter } ?? false }
            // A minus sign belongs to the number after it.
            let negated = before == "-" && !expected.hasPrefix("-")
            if !inside(before) && !inside(after) && !negated { return true }
            search = reply[r.upperBound...]
        }
        return false
    }

    /// Accuracy on `count` held-out questions of `task`.
    public static func accuracy(model: GPT, tokenizer: Tokenizer, task: ChatTask, count: Int, maxTokens: Int) -> ChatAccuracy {
        accuracy(task: task, count: count) { question in
            let session = ChatSession(model: model, tokenizer: tokenizer, sampler: Sampler(temperature: 0, topK: 0, seed: 0),
                                      maxReplyTokens: maxTokens)
            var shown = ""
            _ = try? session.reply(to: question) { piece in shown += piece.shown; return true }   // (a question too long is wrong)
            return shown
        }
    }

    /// Accuracy on `count` held-out questions of `task` (seeds 0, 1, ...), each answered by
    /// `reply`: the text shown to the user, tool calls and their results in «».
    public static func accuracy(task: ChatTask, count: Int, reply: (String) -> String) -> ChatAccuracy {
        var correct = 0
        var examples: [(String, String, String)] = []
        for i in 0..<count {
            let (question, expected, mentions) = task.question(seed: UInt64(i))
            let shown = reply(question)
            // The answer must be in the assistant's own words, not only in the tool's output.
            let text = shown.replacingOccurrences(of: #"«[^»]*»"#, with: " ", options: .regularExpression)
            if contains(text, expected) && mentions.allSatisfy({ contains(text, $0) }) { correct += 1 }
            if examples.count < 3 { examples.append((question, shown, expected)) }
        }
        return ChatAccuracy(task: task, correct: correct, total: count, examples: examples)
    }
}

// Synthetic chat tasks, in the spirit of nanochat's tasks/ (SpellingBee, its arithmetic with
// the calculator, an identity set), so chat fine-tuning runs end to end with nothing to
// download. Each task makes conversations from a seed: a question, and an answer that uses
// the calculator where nanochat's would. Held-out questions come from other seeds, and a
// reply is graded by the number (or phrase) it must contain.
import Foundation
import Tensor
import Inference

public enum ChatTask: String, CaseIterable, Sendable {
    /// "How many times does the letter r appear in strawberry?" answered with
    /// <|python_start|>'strawberry'.count('r')<|python_end|> and the count.
    case spelling
    /// Sums, differences and products of two numbers, answered with the calculator.
    case arithmetic
    /// Who the assistant is.
    case identity

    static let words = [
        "strawberry", "banana", "mississippi", "apple", "bookkeeper", "committee", "parallel", "balloon",
        "coffee", "letter", "success", "address", "assessment", "tomorrow", "occurrence", "raspberry",
        "pepper", "giraffe", "umbrella", "grammar", "cinnamon", "hippopotamus", "accommodate", "necessary",
        "possession", "millennium", "embarrass", "vacuum", "bubble", "jazz", "kayak", "level", "rhythm",
        "syzygy", "queue", "referee", "tattoo", "zucchini", "broccoli", "spaghetti", "avocado", "pineapple",
        "watermelon", "blueberry", "cucumber", "tennessee", "massachusetts", "connecticut", "afternoon",
        "cookbook", "bellwether", "seventeen", "shakespeare", "romeo", "juliet", "citizen", "senator",
    ]

    /// The last words are kept out of training examples: a held-out spelling question asks
    /// about a word the model never saw spelled.
    static let heldOutWords = 12

    /// One example conversation for seed `seed`, from the training side or the held-out side.
    public func conversation(seed: UInt64, heldOut: Bool = false) -> Conversation {
        var rng = SeededGenerator(seed: (seed &* 0x9E37_79B9_7F4A_7C15) ^ (heldOut ? 0x5555_5555 : 0)
                                  &+ UInt64(ChatTask.allCases.firstIndex(of: self) ?? 0))
        let (question, parts) = example(&rng, heldOut: heldOut)
        return Conversation([Conversation.Message(.user, question), Conversation.Message(.assistant, parts: parts)])
    }

    /// A held-out question for seed `seed` and what a right reply must contain: the answer,
    /// and for spelling the word asked about (so a count of another word does not pass).
    public func question(seed: UInt64) -> (prompt: String, answer: String, mentions: [String]) {
        let c = conversation(seed: seed, heldOut: true)
        let prompt = c.messages[0].parts.compactMap { if case .text(let t) = $0 { return t } else { return nil } }.joined()
        var answer = "nanochat"
        for part in c.messages[1].parts {
            if case .pythonOutput(let value) = part { answer = value }
        }
        let word = self == .spelling ? prompt.split(separator: " ").last.map { String($0.dropLast()) } : nil
        return (prompt, answer, word.map { [$0] } ?? [])
    }

    func example(_ rng: inout SeededGenerator, heldOut: Bool) -> (String, [Conversation.Part]) {
        func pick<T>(_ list: [T]) -> T { list[Int(rng.next() % UInt64(list.count))] }
        switch self {
        case .spelling:
            let split = ChatTask.words.count - ChatTask.heldOutWords
            let word = pick(heldOut ? Array(ChatTask.words[split...]) : Array(ChatTask.words[..<split]))
            let letters = Array(Set(word)).sorted()
            // Mostly letters in the word, sometimes one that is not.
            let letter = rng.nextUnit() < 0.8 ? pick(letters) : pick(Array("abcdefghijklmnopqrstuvwxyz"))
            let count = word.filter { $0 == letter }.count
            let question = pick([
                "How many times does the letter \(letter) appear in \(word)?",
                "How many \(letter)'s are in the word \(word)?",
                "Count the letter \(letter) in \(word).",
            ])
            return (question, [.text("Let me count the \(letter)'s in \(word). "),
                               .python("'\(word)'.count('\(letter)')"), .pythonOutput("\(count)"),
                               .text("The letter \(letter) appears \(count) time\(count == 1 ? "" : "s") in \(word).")])
        case .arithmetic:
            let a = Int(rng.next() % 1000), b = Int(rng.next() % 1000)
            let (symbol, word, value): (String, String, Int) = pick([("+", "plus", a + b), ("-", "minus", a - b), ("*", "times", a * b)])
            let question = pick(["What is \(a) \(word) \(b)?", "Compute \(a) \(symbol) \(b).", "What is \(a)\(symbol)\(b)?"])
            return (question, [.python("\(a)\(symbol)\(b)"), .pythonOutput("\(value)"), .text("\(a) \(symbol) \(b) = \(value).")])
        case .identity:
            let question = pick(["Who are you?", "What is your name?", "Who made you?", "What are you?", "Tell me about yourself."])
            let answer = pick([
                "I am nanochat, a small language model trained on a CPU with nanochat-swift.",
                "My name is nanochat. I am a small language model, trained from scratch on a CPU.",
                "I'm nanochat, a small chat model built with nanochat-swift.",
            ])
            return (question, [.text(answer)])
        }
    }
}

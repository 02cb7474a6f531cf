// CORE's prompts and where their scored tokens lie, as nanochat's core_eval renders and cuts
// them (its Jinja templates written out: each few-shot example, then two newlines, then the
// item), so that the same item gives the same ids here and there.
import Foundation
import Tokenizer

/// One item's prompts as token ids (<|bos|> first), and for each the tokens scored:
/// positions starts[i]..<ends[i] of tokens[i].
public struct CorePromptBatch: Sendable, Equatable {
    public var prompts: [String]
    public var tokens: [[Int32]]
    public var starts: [Int], ends: [Int]
}

public enum CorePrompts {
    /// The few-shot examples of item `index` of a task's (shuffled, cut) examples: `shots`
    /// others, drawn by `random.Random(1234 + index).sample` from the indices but `index`.
    public static func fewShotIndices(index: Int, count: Int, shots: Int) -> [Int] {
        guard shots > 0 else { return [] }
        var rng = PythonRandom(seed: UInt64(1234 + index))
        return rng.sample((0..<count).filter { $0 != index }, shots)
    }

    /// The task's examples in the order they are evaluated: shuffled by `random.Random(1337)`,
    /// then the first `maxPerTask` (all when nil).
    public static func evaluationOrder<T>(_ items: [T], maxPerTask: Int?) -> [T] {
        var shuffled = items
        var rng = PythonRandom(seed: 1337)
        rng.shuffle(&shuffled)
        if let maxPerTask, maxPerTask > 0, maxPerTask < shuffled.count { return Array(shuffled.prefix(maxPerTask)) }
        return shuffled
    }

    /// The prompts of `item` after `fewShot` examples: one per choice (multiple choice), one
    /// per context (schema), or the context alone and with its continuation (language
    /// modelling; the first stripped of surrounding whitespace, as nanochat strips it).
    public static func render(_ item: CoreItem, fewShot: [CoreItem], delimiter: String) -> [String] {
        var shots = ""
        for example in fewShot {
            switch example {
            case .multipleChoice(let query, let choices, let gold): shots += query + delimiter + choices[gold]
            case .schema(let options, let continuation, let gold): shots += options[gold] + delimiter + continuation
            case .languageModeling(let context, let continuation): shots += pythonStrip(context) + delimiter + continuation
            }
            shots += "\n\n"
        }
        switch item {
        case .multipleChoice(let query, let choices, _):
            return choices.map { shots + query + delimiter + $0 }
        case .schema(let options, let continuation, _):
            return options.map { shots + $0 + delimiter + continuation }
        case .languageModeling(let context, let continuation):
            let head = shots + pythonStrip(context) + delimiter
            return [pythonStrip(head), head + continuation]
        }
    }

    /// Tokens and scored spans of rendered prompts: multiple choice scores what follows the
    /// prompts' common prefix, schema the common suffix, language modelling what the second
    /// prompt adds to the first (which must be a prefix of it in tokens).
    public static func batch(_ prompts: [String], type: CoreTaskType, tokenizer: Tokenizer) throws -> CorePromptBatch {
        let tokens = prompts.map { [tokenizer.bosID] + tokenizer.encode($0) }
        let ends = tokens.map(\.count)
        switch type {
        case .multipleChoice:
            let start = commonLength(tokens, fromEnd: false)
            return CorePromptBatch(prompts: prompts, tokens: tokens, starts: Array(repeating: start, count: tokens.count), ends: ends)
        case .schema:
            let suffix = commonLength(tokens, fromEnd: true)
            return CorePromptBatch(prompts: prompts, tokens: tokens, starts: ends.map { $0 - suffix }, ends: ends)
        case .languageModeling:
            let without = tokens[0], with = tokens[1]
            guard without.count < with.count, Array(with.prefix(without.count)) == without else {
                throw CoreBundleError("the context's tokens are not the first tokens of the context with its continuation (nanochat's scoring needs them to be; a delimiter or continuation that merges into the context's last characters, such as a newline after punctuation, breaks this)")
            }
            return CorePromptBatch(prompts: [prompts[1]], tokens: [with], starts: [without.count], ends: [with.count])
        }
    }

    /// How many tokens every sequence shares at its start (or end).
    static func commonLength(_ sequences: [[Int32]], fromEnd: Bool) -> Int {
        let shortest = sequences.map(\.count).min() ?? 0
        for i in 0..<shortest {
            let at = { (s: [Int32]) in fromEnd ? s[s.count - 1 - i] : s[i] }
            let first = at(sequences[0])
            if !sequences.allSatisfy({ at($0) == first }) { return i }
        }
        return shortest
    }

    /// Python's `str.strip()`: the characters `str.isspace` accepts, off both ends.
    public static func pythonStrip(_ s: String) -> String {
        let scalars = s.unicodeScalars
        guard let first = scalars.firstIndex(where: { !isPythonSpace($0) }) else { return "" }
        guard let last = scalars.lastIndex(where: { !isPythonSpace($0) }) else { return "" }
        return String(scalars[first...last])
    }

    static func isPythonSpace(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000: return true
        default: return false
        }
    }
}

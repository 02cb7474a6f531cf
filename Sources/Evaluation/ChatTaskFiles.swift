// The public chat benchmarks nanochat evaluates a chat model on, read from their files as
// they are published, and turned into conversations exactly as nanochat's tasks/ turn them:
//
//   ARC-Easy, ARC-Challenge  JSONL or parquet in Hugging Face's layout ({"question",
//                            "choices": {"text", "label"}, "answerKey"}), or JSONL in AI2's
//                            ({"question": {"stem", "choices": [{"text", "label"}]}, "answerKey"})
//   MMLU                     JSONL or parquet, {"question", "subject", "choices": [4], "answer": 0-3}
//   GSM8K                    JSONL or parquet, {"question", "answer"} (calculator calls in
//                            <<expr=value>>, the final answer after "#### ")
//   HumanEval                JSONL or parquet, {"task_id", "prompt", "canonical_solution",
//                            "test", "entry_point"}
//
// nanochat loads each test split with Hugging Face `datasets` and shuffles it with seed 42;
// problems are taken in that order (`huggingFaceShuffleOrder`), so `--max-problems N` means
// the same N problems as nanochat's `-x N`. Every error names the file and the line (or row)
// and field.
import Corpus
import Foundation
import Inference
import Tensor

/// A task file, line or field that cannot be read; the message names where.
public struct ChatTaskError: UserFacingError {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A benchmark nanochat's chat_eval runs.
public enum ChatBenchmark: String, CaseIterable, Sendable {
    case arcEasy = "ARC-Easy", arcChallenge = "ARC-Challenge", mmlu = "MMLU", gsm8k = "GSM8K", humanEval = "HumanEval"

    /// Categorical: scored by the logits of the answer letters; else generative: a greedy
    /// reply checked by the task.
    public var isCategorical: Bool { self == .arcEasy || self == .arcChallenge || self == .mmlu }

    /// Accuracy of guessing (nanochat's baselines for its ChatCORE): 1 in 4 letters, or 0.
    public var baseline: Double { isCategorical ? 0.25 : 0 }

    /// The name as nanochat's `-a` takes it, case aside.
    public static func named(_ name: String) -> ChatBenchmark? {
        allCases.first { $0.rawValue.lowercased() == name.lowercased() }
    }
}

/// One problem of a benchmark: the conversation (the user's message and the reference reply,
/// as nanochat's task builds it) and what scoring needs.
public struct ChatProblem: Sendable {
    public let conversation: Conversation
    /// Categorical: the answer letters offered, in order.
    public let letters: [String]
    /// HumanEval: the function the tests check, and the tests (`check(candidate)`).
    public let entryPoint: String, test: String
    /// Where it was read (file:line, or file row N).
    public let source: String

    /// The reference reply's text parts joined (for categorical tasks, the right letter).
    public var reference: String {
        (conversation.messages.last?.parts ?? []).map { part -> String in
            switch part { case .text(let s), .python(let s), .pythonOutput(let s): return s }
        }.joined()
    }

    /// The user's message.
    public var question: String { conversation.messages.first?.plainText ?? "" }
}

public enum ChatTaskFile {
    /// The problems of `benchmark` in `path` (`.jsonl` or `.parquet`), in file order.
    public static func problems(_ benchmark: ChatBenchmark, path: String) throws -> [ChatProblem] {
        var rows: [(fields: [String: Any], at: String)] = []
        if path.hasSuffix(".parquet") {
            rows = try parquetRows(benchmark, path: path)
        } else {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ChatTaskError("\(path): cannot read the \(benchmark.rawValue) file")
            }
            guard let text = String(data: data, encoding: .utf8) else { throw ChatTaskError("\(path): not UTF-8 text") }
            for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                guard !line.allSatisfy({ $0.isWhitespace }) else { continue }
                let at = "\(path):\(i + 1)"
                guard let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] else {
                    throw ChatTaskError("\(at): not a JSON object")
                }
                rows.append((object, at))
            }
        }
        guard !rows.isEmpty else { throw ChatTaskError("\(path): no \(benchmark.rawValue) problems") }
        return try rows.map { try problem(benchmark, $0.fields, at: $0.at) }
    }

    /// The problems in nanochat's order: the file's rows shuffled as `datasets` shuffles
    /// them with seed 42.
    public static func shuffled(_ problems: [ChatProblem], seed: UInt64 = 42) -> [ChatProblem] {
        huggingFaceShuffleOrder(count: problems.count, seed: seed).map { problems[$0] }
    }

    /// What `chat-eval --benchmark` evaluates: the file's problems in nanochat's order, the
    /// first `maxProblems` of them (all when nil), so a smaller run is a prefix of the whole.
    public static func evaluationSet(_ benchmark: ChatBenchmark, path: String, maxProblems: Int? = nil) throws -> [ChatProblem] {
        let all = shuffled(try problems(benchmark, path: path))
        return maxProblems.map { Array(all.prefix(Swift.max(0, $0))) } ?? all
    }

    /// A parquet file's columns, row by row, as the JSON rows of the same file would hold
    /// them ("choices.text" the field text of the object choices).
    static func parquetRows(_ benchmark: ChatBenchmark, path: String) throws -> [(fields: [String: Any], at: String)] {
        let columns: [(name: String, shape: ParquetFile.Shape)]
        switch benchmark {
        case .gsm8k: columns = [("question", .strings), ("answer", .strings)]
        case .humanEval: columns = [("task_id", .strings), ("prompt", .strings), ("canonical_solution", .strings), ("test", .strings),
                                    ("entry_point", .strings)]
        case .arcEasy, .arcChallenge:
            columns = [("question", .strings), ("choices.text", .stringLists), ("choices.label", .stringLists), ("answerKey", .strings)]
        case .mmlu: columns = [("question", .strings), ("choices", .stringLists), ("answer", .integers)]
        }
        var rows: [[String: Any]] = []
        for column in columns {
            let file: ParquetFile
            let needed = " (\(benchmark.rawValue) reads \(columns.map(\.name).joined(separator: ", ")))"
            do { file = try ParquetFile(path: path, column: column.name, accepting: [column.shape], missing: needed) } catch let e as CorpusError {
                throw ChatTaskError("\(e.path): \(e.message)")
            }
            var values: [Any] = []
            func here() -> String { "\(path) row \(values.count + 1)" }
            for group in 0..<file.rowGroupRows.count {
                switch column.shape {
                case .strings:
                    for (r, value) in try file.rows(ofRowGroup: group).enumerated() {
                        guard let bytes = value else { throw ChatTaskError("\(here()): \"\(column.name)\" is null") }
                        guard let s = String(validating: bytes, as: UTF8.self) else {
                            throw ChatTaskError("\(here()): \"\(column.name)\" is not UTF-8 (row \(r + 1) of row group \(group + 1))")
                        }
                        values.append(s)
                    }
                case .stringLists:
                    for list in try file.lists(ofRowGroup: group) {
                        guard let list else { throw ChatTaskError("\(here()): \"\(column.name)\" is null") }
                        values.append(try list.enumerated().map { j, item -> String in
                            guard let bytes = item, let s = String(validating: bytes, as: UTF8.self) else {
                                throw ChatTaskError("\(here()): \"\(column.name)\"[\(j)] is null or not UTF-8")
                            }
                            return s
                        })
                    }
                case .integers:
                    for value in try file.integers(ofRowGroup: group) {
                        guard let value else { throw ChatTaskError("\(here()): \"\(column.name)\" is null") }
                        values.append(Int(value))
                    }
                }
            }
            if rows.isEmpty { rows = values.map { _ in [:] } }
            guard values.count == rows.count else {
                throw ChatTaskError("\(path): column \"\(column.name)\" has \(values.count) rows, the others \(rows.count)")
            }
            let parts = column.name.split(separator: ".").map(String.init)
            for (r, value) in values.enumerated() {
                if parts.count == 2 {
                    var object = rows[r][parts[0]] as? [String: Any] ?? [:]
                    object[parts[1]] = value
                    rows[r][parts[0]] = object
                } else {
                    rows[r][column.name] = value
                }
            }
        }
        return rows.enumerated().map { ($0.element, "\(path) row \($0.offset + 1)") }
    }

    /// One row as a problem; `at` names it in errors.
    public static func problem(_ benchmark: ChatBenchmark, _ row: [String: Any], at: String) throws -> ChatProblem {
        func shown(_ value: Any) -> String { (value as? String).map { "\"\($0)\"" } ?? JSONNumber.describe(value) }
        func string(_ key: String, in object: [String: Any] = row, path: String = "") throws -> String {
            guard let value = object[key] else { throw ChatTaskError("\(at): \"\(path)\(key)\" is missing") }
            guard let s = value as? String else { throw ChatTaskError("\(at): \"\(path)\(key)\" must be a string, got \(shown(value))") }
            return s
        }
        func strings(_ value: Any?, _ name: String) throws -> [String] {
            guard let value else { throw ChatTaskError("\(at): \"\(name)\" is missing") }
            guard let list = value as? [Any], !list.isEmpty else { throw ChatTaskError("\(at): \"\(name)\" must be a non-empty list of strings") }
            return try list.enumerated().map { j, v in
                guard let s = v as? String else { throw ChatTaskError("\(at): \"\(name)\"[\(j)] must be a string, got \(shown(v))") }
                return s
            }
        }
        func multipleChoice(question: String, letters: [String], choices: [String], answer: String) -> ChatProblem {
            let user = multipleChoicePrompt(question: question, letters: letters, choices: choices)
            return ChatProblem(conversation: Conversation([.init(.user, user), .init(.assistant, answer)]), letters: letters,
                               entryPoint: "", test: "", source: at)
        }
        switch benchmark {
        case .arcEasy, .arcChallenge:
            let question: String, texts: [String], labels: [String]
            if let stem = row["question"] as? [String: Any] {   // AI2's own layout
                question = try string("stem", in: stem, path: "question.")
                guard let list = row["question"].flatMap({ ($0 as? [String: Any])?["choices"] as? [Any] }), !list.isEmpty else {
                    throw ChatTaskError("\(at): \"question.choices\" must be a non-empty list of {\"text\", \"label\"}")
                }
                var t: [String] = [], l: [String] = []
                for (j, item) in list.enumerated() {
                    guard let choice = item as? [String: Any] else { throw ChatTaskError("\(at): \"question.choices\"[\(j)] is not an object") }
                    t.append(try string("text", in: choice, path: "question.choices[\(j)]."))
                    l.append(try string("label", in: choice, path: "question.choices[\(j)]."))
                }
                texts = t; labels = l
            } else {
                question = try string("question")
                guard let choices = row["choices"] as? [String: Any] else {
                    throw ChatTaskError("\(at): \"choices\" must be an object {\"text\": [...], \"label\": [...]}")
                }
                texts = try strings(choices["text"], "choices.text")
                labels = try strings(choices["label"], "choices.label")
            }
            guard texts.count == labels.count else {
                throw ChatTaskError("\(at): \(texts.count) choice texts but \(labels.count) labels")
            }
            let answer = try string("answerKey")
            guard labels.contains(answer) else {
                throw ChatTaskError("\(at): \"answerKey\" \"\(answer)\" is not one of the labels \(labels.joined(separator: ", "))")
            }
            return multipleChoice(question: question, letters: labels, choices: texts, answer: answer)
        case .mmlu:
            let choices = try strings(row["choices"], "choices")
            guard choices.count == 4 else { throw ChatTaskError("\(at): \"choices\" must hold 4 answers, got \(choices.count)") }
            guard let value = row["answer"] else { throw ChatTaskError("\(at): \"answer\" is missing") }
            guard let answer = JSONNumber.strictInt(value), (0..<4).contains(answer) else {
                throw ChatTaskError("\(at): \"answer\" must be a whole number in 0..<4, got \(shown(value))")
            }
            let letters = ["A", "B", "C", "D"]
            return multipleChoice(question: try string("question"), letters: letters, choices: choices, answer: letters[answer])
        case .gsm8k:
            let question = try string("question"), answer = try string("answer")
            let reply = Conversation.Message(.assistant, parts: calculatorParts(answer))
            return ChatProblem(conversation: Conversation([.init(.user, question), reply]), letters: [], entryPoint: "", test: "",
                               source: at)
        case .humanEval:
            let prompt = try string("prompt"), solution = try string("canonical_solution")
            let reply = prompt + "\n" + solution
            return ChatProblem(conversation: Conversation([.init(.user, prompt), .init(.assistant, reply)]), letters: [],
                               entryPoint: try string("entry_point"), test: try string("test"), source: at)
        }
    }

    /// nanochat's `render_mc`: the question, each choice followed by "=" and its letter (no
    /// space before the letter: " A" and "A" are different tokens), and the instruction.
    public static func multipleChoicePrompt(question: String, letters: [String], choices: [String]) -> String {
        var s = "Multiple Choice question: \(question)\n"
        for (letter, choice) in zip(letters, choices) { s += "- \(choice)=\(letter)\n" }
        return s + "\nRespond only with the letter of the correct answer."
    }

    /// A GSM8K solution as the parts of a reply: the text between calculator calls, and each
    /// <<expr=value>> as a call of expr answered with value (split at its last "="), as
    /// nanochat's GSM8K task splits it (`re.split(r'(<<[^>]+>>)', answer)`, empty texts kept).
    public static func calculatorParts(_ answer: String) -> [Conversation.Part] {
        // Python's regex works on code points: so does this scan.
        let scalars = answer.unicodeScalars
        var parts: [Conversation.Part] = []
        var text = String.UnicodeScalarView()
        var i = scalars.startIndex
        while i < scalars.endIndex {
            if scalars[i...].starts(with: "<<".unicodeScalars) {
                // A call: "<<", one or more characters other than ">", then ">>".
                let innerStart = scalars.index(i, offsetBy: 2)
                let innerEnd = scalars[innerStart...].firstIndex(of: ">") ?? scalars.endIndex
                if innerEnd > innerStart, scalars[innerEnd...].starts(with: ">>".unicodeScalars) {
                    parts.append(.text(String(text)))
                    text = String.UnicodeScalarView()
                    if let eq = scalars[innerStart..<innerEnd].lastIndex(of: "=") {
                        parts.append(.python(String(scalars[innerStart..<eq])))
                        parts.append(.pythonOutput(String(scalars[scalars.index(after: eq)..<innerEnd])))
                    } else {
                        parts.append(.python(String(scalars[innerStart..<innerEnd])))
                        parts.append(.pythonOutput(""))
                    }
                    i = scalars.index(innerEnd, offsetBy: 2)
                    continue
                }
            }
            text.append(scalars[i])
            i = scalars.index(after: i)
        }
        parts.append(.text(String(text)))
        return parts
    }
}

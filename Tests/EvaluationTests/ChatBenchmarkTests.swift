// nanochat's chat evaluation of ARC, MMLU, GSM8K and HumanEval: NumPy's shuffle order, the
// benchmark files in their published layouts, the conversations nanochat's tasks build, and
// the categorical and generative scoring of nanochat's chat_eval on the same model (fixtures
// written by tools/chat_eval_fixtures.py from nanochat's own code), and bad files named by
// file, line and field.
import Blocks
import Evaluation
import Foundation
import Inference
import Tensor
import Testing
import Tokenizer

let chatTaskFiles = evaluationFixtures + "/chat_tasks"

@Suite struct NumpyRandomTests {
    @Test func permutationsAndRawOutputsAreNumPys() throws {
        let cases = try #require(try fixtureJSON("numpy_random.json")["cases"] as? [[String: Any]])
        #expect(cases.count == 6)
        for c in cases {
            let seed = try #require((c["seed"] as? NSNumber)?.uint64Value)
            var bits = NumpyPCG64(seed: seed)
            let raw = try #require(c["raw"] as? [String]).compactMap { UInt64($0) }
            #expect(raw.count == 4)
            #expect((0..<4).map { _ in bits.next64() } == raw, "PCG64(\(seed)) raw outputs")
            let perms = try #require(c["permutations"] as? [String: [Int]])
            #expect(perms.count == 9)
            for (key, expected) in perms {
                let n = try #require(Int(key))
                let got = huggingFaceShuffleOrder(count: n, seed: seed)
                #expect(Set(got) == Set(0..<n), "a permutation of \(n)")
                let shown = expected.count == n ? got : Array(got.prefix(40) + got.suffix(40))
                #expect(shown == expected, "default_rng(\(seed)).permutation(\(n))")
            }
        }
    }

    /// 32-bit draws take a 64-bit output's low half, then its high half.
    @Test func thirtyTwoBitDrawsSplitASixtyFourBitOutput() {
        var a = NumpyPCG64(seed: 42), b = NumpyPCG64(seed: 42)
        let whole = a.next64()
        #expect(UInt64(b.next32()) == whole & 0xffff_ffff)
        #expect(UInt64(b.next32()) == whole >> 32)
        #expect(b.next64() == a.next64())
    }
}

/// nanochat's messages (JSON) as our conversation.
func nanochatConversation(_ messages: Any?) throws -> Conversation {
    try Conversation(json: ["messages": try #require(messages as? [Any])])
}

@Suite struct ChatBenchmarkFileTests {
    /// `chat-eval --benchmark F --max-problems N` evaluates the first N of nanochat's order, not
    /// of the file's: the fixture's first five GSM8K problems after the shuffle, which are
    /// not the file's first five; a bound past the file, or none, gives all twelve.
    @Test func maxProblemsTakesTheFirstOfNanochatsOrder() throws {
        let fixture = try fixtureJSON("chat_nanochat.json")
        let references = try #require(fixture["GSM8K_references"] as? [[String: Any]])
        let path = chatTaskFiles + "/gsm8k.jsonl"
        let five = try ChatTaskFile.evaluationSet(.gsm8k, path: path, maxProblems: 5)
        #expect(five.count == 5)
        for (p, e) in zip(five, references) {
            #expect(p.conversation == (try nanochatConversation(e["messages"])), "GSM8K \(p.source)")
        }
        let fileOrder = try ChatTaskFile.problems(.gsm8k, path: path)
        #expect(five.map(\.source) != fileOrder.prefix(5).map(\.source))
        #expect(try ChatTaskFile.evaluationSet(.gsm8k, path: path, maxProblems: 100).count == 12)
        #expect(try ChatTaskFile.evaluationSet(.gsm8k, path: path).map(\.source) == ChatTaskFile.shuffled(fileOrder).map(\.source))
    }

    /// Every benchmark's conversations, in nanochat's order, equal the ones its tasks build.
    @Test func conversationsAreNanochatsInItsOrder() throws {
        let fixture = try fixtureJSON("chat_nanochat.json")
        for (name, file, key) in [("ARC-Easy", "arc.jsonl", "ARC-Easy"), ("MMLU", "mmlu.jsonl", "MMLU")] {
            let benchmark = try #require(ChatBenchmark.named(name))
            let problems = ChatTaskFile.shuffled(try ChatTaskFile.problems(benchmark, path: chatTaskFiles + "/" + file))
            let expected = try #require((fixture[key] as? [String: Any])?["problems"] as? [[String: Any]])
            #expect(problems.count == expected.count)
            for (p, e) in zip(problems, expected) {
                #expect(p.conversation == (try nanochatConversation(e["messages"])), "\(name) \(p.source)")
                #expect(p.letters == (e["letters"] as? [String]))
            }
        }
        let gsm = ChatTaskFile.shuffled(try ChatTaskFile.problems(.gsm8k, path: chatTaskFiles + "/gsm8k.jsonl"))
        let references = try #require(fixture["GSM8K_references"] as? [[String: Any]])
        #expect(gsm.count == references.count && gsm.count == 12)
        for (p, e) in zip(gsm, references) {
            #expect(p.conversation == (try nanochatConversation(e["messages"])), "GSM8K \(p.source)")
        }
        let human = ChatTaskFile.shuffled(try ChatTaskFile.problems(.humanEval, path: chatTaskFiles + "/humaneval.jsonl"))
        let humanMessages = try #require((fixture["HumanEval"] as? [String: Any])?["messages"] as? [Any])
        #expect(human.count == humanMessages.count)
        for (p, e) in zip(human, humanMessages) {
            #expect(p.conversation == (try nanochatConversation(e)), "HumanEval \(p.source)")
        }
    }

    /// A calculator call is "<<", characters other than ">", ">>": split at its last "=".
    @Test func gsm8kCallsSplitAsNanochatSplitsThem() {
        let parts = ChatTaskFile.calculatorParts("a <<1+2=3>>3, 1<<3 is <<2*4=8>>8 <<x>> end<<")
        #expect(parts == [.text("a "), .python("1+2"), .pythonOutput("3"), .text("3, 1"), .python("3 is <<2*4"), .pythonOutput("8"),
                          .text("8 "), .python("x"), .pythonOutput(""), .text(" end<<")])
        // Two "=" in a call: the expression keeps the first (Python's rsplit('=', 1)).
        #expect(ChatTaskFile.calculatorParts("so <<2*3==6=True>>True") == [.text("so "), .python("2*3==6"), .pythonOutput("True"), .text("True")])
        #expect(ChatTaskFile.calculatorParts("") == [.text("")])
        #expect(ChatTaskFile.calculatorParts("<<>>") == [.text("<<>>")])
    }

    /// The same rows in both layouts read the same, and the parquet GSM8K (row groups of 5)
    /// as its JSONL.
    @Test func layoutsAndFormatsReadTheSame() throws {
        let hf = try ChatTaskFile.problems(.arcEasy, path: chatTaskFiles + "/arc.jsonl")
        let ai2 = try ChatTaskFile.problems(.arcChallenge, path: chatTaskFiles + "/arc_ai2.jsonl")
        #expect(ai2.count == 6)
        #expect(ai2.map(\.conversation) == hf.prefix(6).map(\.conversation))
        #expect(ai2.map(\.letters) == hf.prefix(6).map(\.letters))
        #expect(Set(hf.map(\.letters.count)) == [3, 4, 5])
        #expect(hf.contains { $0.letters == ["1", "2", "3", "4"] })
        // Hugging Face's parquet layouts, choices in nested columns (MMLU's answer an integer).
        #expect(try ChatTaskFile.problems(.arcEasy, path: chatTaskFiles + "/arc.parquet").map(\.conversation) == hf.map(\.conversation))
        #expect(try ChatTaskFile.problems(.arcEasy, path: chatTaskFiles + "/arc.parquet").map(\.letters) == hf.map(\.letters))
        let mmlu = try ChatTaskFile.problems(.mmlu, path: chatTaskFiles + "/mmlu.jsonl")
        #expect(try ChatTaskFile.problems(.mmlu, path: chatTaskFiles + "/mmlu.parquet").map(\.conversation) == mmlu.map(\.conversation))
        let jsonl = try ChatTaskFile.problems(.gsm8k, path: chatTaskFiles + "/gsm8k.jsonl")
        let parquet = try ChatTaskFile.problems(.gsm8k, path: chatTaskFiles + "/gsm8k.parquet")
        #expect(parquet.map(\.conversation) == jsonl.map(\.conversation))
        #expect(parquet[6].source.hasSuffix("gsm8k.parquet row 7"))
    }

    /// A question longer than the rendering's limit is cut as nanochat's render_conversation
    /// cuts it: the first 2048 tokens of the conversation, then <|assistant_start|>; a short
    /// one is rendered whole.
    @Test func aLongPromptIsCutAtNanochatsRenderLimit() throws {
        let tok = try Tokenizer.load(from: testTokenizer)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("gsm8k-long-\(UUID().uuidString).jsonl").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let long = (0..<3000).map { "w\($0 % 97)" }.joined(separator: " ")
        try ("{\"question\": \"\(long)\", \"answer\": \"#### 1\"}\n{\"question\": \"Two?\", \"answer\": \"#### 2\"}\n")
            .write(toFile: path, atomically: false, encoding: .utf8)
        let problems = try ChatTaskFile.problems(.gsm8k, path: path)
        let assistantStart = ChatTokens(tok).assistantStart
        for problem in problems {
            let whole = try tok.render(Conversation(Array(problem.conversation.messages.dropLast())), maxTokens: .max).ids
            let prompt = try ChatTaskScoring.prompt(problem, tokenizer: tok)
            #expect(prompt == Array(whole.prefix(2048)) + [assistantStart], "\(whole.count) tokens rendered, prompt \(prompt.count)")
        }
        #expect(try ChatTaskScoring.prompt(problems[0], tokenizer: tok).count == 2049)
        #expect(try ChatTaskScoring.prompt(problems[1], tokenizer: tok).count < 100)
    }

    /// nanochat's render_mc, written out.
    @Test func multipleChoicePromptIsNanochats() {
        #expect(ChatTaskFile.multipleChoicePrompt(question: "Sky?", letters: ["A", "B"], choices: ["blue", "red"])
                == "Multiple Choice question: Sky?\n- blue=A\n- red=B\n\nRespond only with the letter of the correct answer.")
    }

    @Test func badFilesNameTheFileLineAndField() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("chat-bad-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func message(_ benchmark: ChatBenchmark, _ text: String, ext: String = "jsonl") -> String {
            let path = dir + "/t.\(ext)"
            FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
            do { _ = try ChatTaskFile.problems(benchmark, path: path); return "no error" } catch { return "\(error)" }
        }
        let arc = #"{"question": "q", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "A"}"#
        #expect(message(.arcEasy, arc + "\nnot json\n") == "\(dir)/t.jsonl:2: not a JSON object")
        #expect(message(.arcEasy, arc.replacingOccurrences(of: #""answerKey": "A""#, with: #""answerKey": "C""#))
                == "\(dir)/t.jsonl:1: \"answerKey\" \"C\" is not one of the labels A, B")
        #expect(message(.arcEasy, arc.replacingOccurrences(of: #""label": ["A", "B"]"#, with: #""label": ["A"]"#))
                == "\(dir)/t.jsonl:1: 2 choice texts but 1 labels")
        #expect(message(.arcEasy, #"{"question": "q", "choices": ["a"], "answerKey": "A"}"#)
                == "\(dir)/t.jsonl:1: \"choices\" must be an object {\"text\": [...], \"label\": [...]}")
        #expect(message(.mmlu, #"{"question": "q", "choices": ["a", "b", "c", "d"], "answer": 4}"#)
                == "\(dir)/t.jsonl:1: \"answer\" must be a whole number in 0..<4, got 4")
        #expect(message(.mmlu, #"{"question": "q", "choices": ["a", "b", "c"], "answer": 1}"#)
                == "\(dir)/t.jsonl:1: \"choices\" must hold 4 answers, got 3")
        #expect(message(.gsm8k, "\n\n" + #"{"question": "q", "answer": 5}"#) == "\(dir)/t.jsonl:3: \"answer\" must be a string, got 5")
        #expect(message(.humanEval, #"{"prompt": "p", "canonical_solution": "s", "test": "t"}"#)
                == "\(dir)/t.jsonl:1: \"entry_point\" is missing")
        #expect(message(.gsm8k, "\n") == "\(dir)/t.jsonl: no GSM8K problems")
        #expect(message(.gsm8k, "PAR1 not really", ext: "parquet").hasPrefix("\(dir)/t.parquet: "))
        #expect(message(.mmlu, "PAR1 x", ext: "parquet").hasPrefix("\(dir)/t.parquet: "))
        // A GSM8K file given as ARC: the column ARC needs is not there.
        #expect(throws: ChatTaskError.self) { try ChatTaskFile.problems(.arcEasy, path: chatTaskFiles + "/gsm8k.parquet") }
        #expect(throws: ChatTaskError.self) { try ChatTaskFile.problems(.gsm8k, path: dir + "/missing.jsonl") }
    }
}

@Suite(.serialized) struct ChatBenchmarkScoringTests {
    /// nanochat's ChatCORE terms: accuracy centred on guessing, 1 in 4 for the letter tasks
    /// (ARC, MMLU), 0 for the generative ones; benchmarks are named as `-a` names them.
    @Test func centredAccuracyCountsFromGuessing() {
        let outcomes = [true, true, false, false, true, false, false, false]   // 3 of 8
        let letters: Set<ChatBenchmark> = [.arcEasy, .arcChallenge, .mmlu]
        for b in ChatBenchmark.allCases {
            let r = ChatBenchmarkResult(benchmark: b, outcomes: outcomes, problems: [])
            #expect(r.correct == 3 && r.total == 8 && r.accuracy == 0.375)
            #expect(b.isCategorical == letters.contains(b), "\(b.rawValue)")
            #expect(abs(r.centered - (letters.contains(b) ? 1.0 / 6 : 0.375)) < 1e-15, "\(b.rawValue): \(r.centered)")
        }
        #expect(ChatBenchmarkResult(benchmark: .mmlu, outcomes: [true, true, true, true], problems: []).centered == 1)
        #expect(ChatBenchmarkResult(benchmark: .arcChallenge, outcomes: [true, false, false, false], problems: []).centered == 0)
        #expect(ChatBenchmarkResult(benchmark: .gsm8k, outcomes: [], problems: []).accuracy == 0)
        #expect(ChatBenchmark.named("arc-easy") == .arcEasy && ChatBenchmark.named("GSM8K") == .gsm8k
                && ChatBenchmark.named("humaneval") == .humanEval && ChatBenchmark.named("hellaswag") == nil)
    }

    /// Categorical: every prompt's ids, the letters' logits and the letter chosen, and the
    /// accuracy, as nanochat's chat_eval gives them on the same model.
    @Test func categoricalScoringEqualsNanochats() throws {
        let fixture = try fixtureJSON("chat_nanochat.json")
        let (model, _) = try Checkpoint.load(from: evaluationFixtures + "/model")
        let tok = try Tokenizer.load(from: testTokenizer)
        try Precision.with(.float32) {
            for (benchmark, file, batch) in [(ChatBenchmark.arcEasy, "arc.jsonl", 8), (.mmlu, "mmlu.jsonl", 5)] {
                let expected = try #require(fixture[benchmark.rawValue] as? [String: Any])
                let records = try #require(expected["problems"] as? [[String: Any]])
                let problems = ChatTaskFile.shuffled(try ChatTaskFile.problems(benchmark, path: chatTaskFiles + "/" + file))
                let result = try ChatTaskScoring.evaluate(benchmark, problems: problems, model: model, tokenizer: tok, batchSize: batch)
                #expect(result.total == records.count)
                #expect(result.accuracy == (expected["accuracy"] as? Double), "\(benchmark.rawValue) accuracy")
                for (r, e) in zip(result.problems, records) {
                    #expect(r.prompt == (e["prompt"] as? [Int]).map { $0.map(Int32.init) }, "\(benchmark.rawValue) \(r.index): prompt ids")
                    #expect(r.answer == (e["answer"] as? String), "\(benchmark.rawValue) \(r.index): letter")
                    #expect(r.correct == (e["correct"] as? Bool))
                    // The letters' logits themselves, to float rounding.
                    let logits = try #require(e["letter_logits"] as? [Double])
                    #expect(r.letterLogits.count == logits.count)
                    for (a, b) in zip(r.letterLogits, logits) { #expect(abs(a - b) <= 1e-4 * max(1, abs(b)), "\(benchmark.rawValue) \(r.index): \(a) against \(b)") }
                }
                // Alone or in a batch padded after it, a prompt's logits are the same to rounding.
                let alone = try ChatTaskScoring.categorical([problems[1]], indices: [1], model: model, tokenizer: tok)
                for (a, b) in zip(alone[0].letterLogits, result.problems[1].letterLogits) { #expect(abs(a - b) <= 1e-4 * max(1, abs(b))) }
            }
        }
    }

    /// Letters of equal logits (a model whose zero head gives every token the same) leave
    /// the first letter as the answer, as torch.argmax does.
    @Test func equalLetterLogitsAnswerTheFirstLetter() throws {
        let tok = try Tokenizer.load(from: testTokenizer)
        let model = try GPT(config: ModelConfig(sequenceLen: 512, vocabSize: tok.vocabSize, nLayer: 1, nHead: 1, nKVHead: 1, nEmbd: 16,
                                                blockPattern: [.transformer]), seed: 1)
        let problems = try ChatTaskFile.problems(.arcEasy, path: chatTaskFiles + "/arc.jsonl")
        let results = try ChatTaskScoring.categorical(problems, indices: Array(problems.indices), model: model, tokenizer: tok)
        #expect(results.count == problems.count && problems.contains { $0.reference != $0.letters[0] })
        for (r, p) in zip(results, problems) {
            #expect(Set(r.letterLogits).count == 1 && r.answer == p.letters[0], "\(p.source): \(r.answer) of \(p.letters)")
            #expect(r.correct == (p.reference == p.letters[0]))
        }
    }

    /// Generative: GSM8K's greedy replies token for token, their text, and the outcome.
    @Test func generativeScoringEqualsNanochats() throws {
        let fixture = try fixtureJSON("chat_nanochat.json")
        let maxTokens = try #require(fixture["generated_tokens"] as? Int)
        let expected = try #require(fixture["GSM8K"] as? [String: Any])
        let records = try #require(expected["problems"] as? [[String: Any]])
        let (model, _) = try Checkpoint.load(from: evaluationFixtures + "/model")
        let tok = try Tokenizer.load(from: testTokenizer)
        let problems = ChatTaskFile.shuffled(try ChatTaskFile.problems(.gsm8k, path: chatTaskFiles + "/gsm8k.jsonl"))
        try Precision.with(.float32) {
            let result = try ChatTaskScoring.evaluate(.gsm8k, problems: Array(problems.prefix(records.count)), model: model,
                                                      tokenizer: tok, maxTokens: maxTokens)
            // Decoded one at a time, the replies are the same tokens.
            let alone = try ChatTaskScoring.evaluate(.gsm8k, problems: Array(problems.prefix(records.count)), model: model,
                                                     tokenizer: tok, batchSize: 1, maxTokens: maxTokens)
            #expect(alone.problems.map(\.reply) == result.problems.map(\.reply))
            #expect(result.accuracy == (expected["accuracy"] as? Double))
            for (r, e) in zip(result.problems, records) {
                #expect(r.prompt == (e["prompt"] as? [Int]).map { $0.map(Int32.init) }, "GSM8K \(r.index): prompt ids")
                #expect(r.reply == (e["reply"] as? [Int]).map { $0.map(Int32.init) }, "GSM8K \(r.index): reply")
                #expect(r.answer == (e["text"] as? String))
                #expect(r.correct == (e["correct"] as? Bool))
            }
        }
    }

    /// nanochat's engine rules by value, on a model built so that each token's logits name
    /// the token after it (blocks' outputs zeroed: a position sees only its own token): the
    /// model writes a calculator call, the answer is forced in, the reply goes on after it
    /// and ends at <|assistant_end|> (not kept); forced tokens count toward the limit, which
    /// may cut the reply inside them; replies decoded together equal replies decoded alone.
    @Test func greedyRepliesFollowNanochatsEngineRules() throws {
        let tok = try Tokenizer.load(from: testTokenizer)
        let t = ChatTokens(tok)
        let model = try GPT(config: ModelConfig(sequenceLen: 64, vocabSize: tok.vocabSize, nLayer: 1, nHead: 1, nKVHead: 1, nEmbd: 64,
                                                blockPattern: [.transformer]), seed: 5)
        guard case .transformer(let attention, let mlp) = model.weights.layers[0] else { Issue.record("not a Transformer layer"); return }
        for w in [attention.projection, mlp.down, model.weights.embedding, model.weights.head] {
            w.data(Float.self).update(repeating: 0, count: w.count)
        }
        let expression = tok.encode("1+2"), tail = tok.encode(" so 3!")
        // (token, the token after it) wherever the model picks.
        let sampled: [Int32] = [t.assistantStart, t.pythonStart] + expression + [t.pythonEnd]
        let after: [Int32] = [t.outputEnd] + tail + [t.assistantEnd]
        var pairs = zip(sampled.dropLast(), sampled.dropFirst()).map { ($0, $1) }
        pairs += zip(after.dropLast(), after.dropFirst()).map { ($0, $1) }
        #expect(Set(pairs.map(\.0)).count == pairs.count, "each picking token leads to one next token")
        let c = model.config.nEmbd
        let embedding = model.weights.embedding.data(Float.self), head = model.weights.head.data(Float.self)
        for (slot, (from, to)) in pairs.enumerated() {
            embedding[Int(from) * c + slot] = 1
            head[Int(to) * c + slot] = 10
        }
        let forced = [t.outputStart] + tok.encode("3") + [t.outputEnd]
        let whole = [t.pythonStart] + expression + [t.pythonEnd] + forced + tail
        let prompt = [t.bos, t.userStart] + tok.encode("What is 1+2?") + [t.userEnd, t.assistantStart]
        try Precision.with(.float32) {
            let full = ChatTaskScoring.greedyReplies([prompt], model: model, tokenizer: tok, maxTokens: 100)
            #expect(full == [whole])
            let text = try tok.decode(full[0])
            #expect(text == "<|python_start|>1+2<|python_end|><|output_start|>3<|output_end|> so 3!")
            // The end token is counted but not kept: a limit of exactly the reply's length plus
            // one finishes it; the forced answer counts one per token.
            #expect(ChatTaskScoring.greedyReplies([prompt], model: model, tokenizer: tok, maxTokens: whole.count + 1) == [whole])
            let cut = expression.count + 3
            #expect(ChatTaskScoring.greedyReplies([prompt, prompt], model: model, tokenizer: tok, maxTokens: cut)
                    == [Array(whole.prefix(cut)), Array(whole.prefix(cut))])
        }
    }

    /// GSM8K's grader: the number after the first "#### " that has one.
    @Test func gsm8kAnswersAreReadAsItsGraderReadsThem() throws {
        let cases = try #require(try fixtureJSON("chat_nanochat.json")["GSM8K_extract"] as? [[String: Any]])
        #expect(cases.count == 6)
        for c in cases {
            let text = try #require(c["text"] as? String)
            #expect(ChatTaskScoring.finalAnswer(text) == (c["answer"] as? String), "\(text)")
        }
        #expect(ChatTaskScoring.finalAnswer("#### x #### 12") == "12")
    }

    /// A reply that gives the reference's number is right; the calculator's answer in the
    /// reply counts as text, as in nanochat.
    @Test func aGSM8KReplyWithTheRightNumberIsRight() throws {
        let problems = ChatTaskFile.shuffled(try ChatTaskFile.problems(.gsm8k, path: chatTaskFiles + "/gsm8k.jsonl"))
        let reference = problems[0].reference
        let number = try #require(ChatTaskScoring.finalAnswer(reference))
        #expect(ChatTaskScoring.finalAnswer("so\n#### \(number)") == ChatTaskScoring.finalAnswer(problems[0].reference))
    }

    /// A GSM8K reply is right when its number is the one in the reference's last part (the
    /// text after the calculator's); a HumanEval reply is right when its program passes the
    /// problem's tests, and a wrong one says why; a categorical benchmark is not judged so.
    @Test func generativeRepliesAreJudgedByTheirTask() throws {
        let gsm8k = ChatTaskFile.shuffled(try ChatTaskFile.problems(.gsm8k, path: chatTaskFiles + "/gsm8k.jsonl"))
        let withCalculator = try #require(gsm8k.first { $0.conversation.messages.last?.parts.count ?? 0 > 1 })
        let number = try #require(ChatTaskScoring.finalAnswer(withCalculator.reference))
        for (reply, right) in [("so\n#### \(number)", true), ("#### \(number)0", false), ("\(number)", false)] {
            let judged = try ChatTaskScoring.judge(withCalculator, reply: reply, benchmark: .gsm8k, sandbox: nil)
            #expect(judged.correct == right && judged.failure == nil, "\(reply)")
        }

        let humanEval = try ChatTaskFile.problems(.humanEval, path: chatTaskFiles + "/humaneval.jsonl")
        let problem = try #require(humanEval.first)
        var sandbox = try PythonSandbox.find()
        sandbox.timeout = 2
        let solved = try ChatTaskScoring.judge(problem, reply: "```python\n\(problem.reference)\n```", benchmark: .humanEval, sandbox: sandbox)
        #expect(solved.correct && solved.failure == nil, "\(solved.failure ?? "")")
        let wrong = try ChatTaskScoring.judge(problem, reply: "```python\ndef \(problem.entryPoint)(*args):\n    return None\n```",
                                              benchmark: .humanEval, sandbox: sandbox)
        #expect(!wrong.correct && wrong.failure?.isEmpty == false)
        #expect(throws: ChatTaskError.self) { try ChatTaskScoring.judge(problem, reply: "", benchmark: .humanEval, sandbox: nil) }
        #expect(throws: ChatTaskError.self) { try ChatTaskScoring.judge(problem, reply: "A", benchmark: .mmlu, sandbox: sandbox) }
    }

    /// HumanEval's program from a reply (imports, the first code block, the tests, check) as
    /// nanochat assembles it, and each program's outcome in the sandbox as in nanochat's.
    @Test func humanEvalProgramsAndOutcomesAreNanochats() throws {
        let fixture = try #require(try fixtureJSON("chat_nanochat.json")["HumanEval"] as? [String: Any])
        let programs = try #require(fixture["programs"] as? [[String: Any]])
        let problems = ChatTaskFile.shuffled(try ChatTaskFile.problems(.humanEval, path: chatTaskFiles + "/humaneval.jsonl"))
        #expect(programs.count == 18)
        var sandbox = try PythonSandbox.find()
        sandbox.timeout = 2
        for p in programs {
            let problem = problems[try #require(p["problem"] as? Int)]
            let reply = try #require(p["reply"] as? String)
            let program = ChatTaskScoring.humanEvalProgram(problem, reply: reply)
            #expect(program == (p["program"] as? String), "\(reply)")
            let outcome = sandbox.run(program)
            #expect(outcome.passed == (p["passed"] as? Bool), "\(reply): \(outcome.failure ?? "")")
        }
    }

    /// The imports at a HumanEval prompt's top are read past comments and blank lines (as
    /// nanochat's extract_imports reads them) up to the first other line.
    @Test func humanEvalImportsReadPastComments() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("humaneval-\(UUID().uuidString).jsonl").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let prompt = "# Helpers first.\nimport math\n  # and typing\n\nfrom typing import List\nx = 1\nimport os\ndef f(xs: List[int]) -> int:\n"
        let line = try JSONSerialization.data(withJSONObject: ["task_id": "HumanEval/9", "prompt": prompt, "canonical_solution": "    return 1\n",
                                                              "test": "def check(f):\n    pass\n", "entry_point": "f"])
        #expect(FileManager.default.createFile(atPath: path, contents: line + Data("\n".utf8)))
        let problem = try #require(try ChatTaskFile.problems(.humanEval, path: path).first)
        let program = ChatTaskScoring.humanEvalProgram(problem, reply: "```python\ndef f(xs):\n    return 1\n```")
        #expect(program == "import math\nfrom typing import List\n\ndef f(xs):\n    return 1\n\ndef check(f):\n    pass\n\ncheck(f)", "\(program)")
        // The code nanochat's pattern (```, an optional "python", whitespace up to a newline,
        // the shortest code up to "\n```") finds first, stripped (the expected codes are
        // Python's re.findall on these replies): past a fence with no code after it, from the
        // second backtick of four, not after "```py", and with the whole reply when none is found.
        let replies = [("Inline ``` fence, then:\n```python\ndef f(xs):\n    return 2\n```", "def f(xs):\n    return 2"),
                       ("````\ndef f(xs):\n    return 3\n```", "def f(xs):\n    return 3"),
                       ("```py\ndef f(xs):\n    return 4\n```", "```py\ndef f(xs):\n    return 4\n```"),
                       ("```python \t\n \ndef f(xs):\n    return 5\n```\n```\nx\n```", "def f(xs):\n    return 5")]
        for (reply, code) in replies {
            let program = ChatTaskScoring.humanEvalProgram(problem, reply: reply)
            #expect(program == "import math\nfrom typing import List\n\n\(code)\n\ndef check(f):\n    pass\n\ncheck(f)", "\(reply)")
        }
    }

    /// The sandbox's limits hold: a program that loops is stopped, one that fills memory
    /// fails, and the prologue has taken away starting processes and deleting files.
    @Test func sandboxStopsAndRefuses() throws {
        var sandbox = try PythonSandbox.find()
        #expect(sandbox.timeout == 5 && sandbox.memoryBytes == 1 << 30, "nanochat's 5 s; 1 GiB of address space")
        #expect(sandbox.run("x = bytearray(256 << 20)\nassert len(x) == 256 << 20\n").passed, "256 MiB fits in the default")
        sandbox.timeout = 1
        let loop = sandbox.run("while True:\n    pass\n")
        #expect(!loop.passed && loop.failure == "timed out")
        #expect(sandbox.run("x = bytearray(2 << 30)\n").failure?.contains("MemoryError") == true)
        #expect(sandbox.run("import os\nos.system('true')\n").failure?.contains("TypeError") == true)
        #expect(sandbox.run("import subprocess\nsubprocess.run(['true'])\n").passed == false)
        #expect(sandbox.run("assert 1 + 1 == 2\n").passed)
    }
}

// CORE as nanochat computes it: CPython's random numbers, the prompts its templates render,
// the spans it scores, the mean losses and greedy matches of its core_eval on the same model
// (fixtures written by tools/core_fixtures.py from nanochat's own code), and bad bundles named
// by file, line and field.
import Blocks
import Evaluation
import Foundation
import Tensor
import Testing
import Tokenizer

/// Tests/EvaluationTests/Fixtures, the test tokenizer, and the shipped bundle.
let evaluationFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path
let testTokenizer = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("TokenizerTests/Fixtures/tokenizer").path
let shakespeareBundle = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("data/core_shakespeare").path

func fixtureJSON(_ name: String) throws -> [String: Any] {
    let data = try Data(contentsOf: URL(fileURLWithPath: evaluationFixtures + "/" + name))
    return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
}

@Suite struct PythonRandomTests {
    @Test func shuffleSampleAndBitsAreCPythons() throws {
        let cases = try #require(try fixtureJSON("python_random.json")["cases"] as? [[String: Any]])
        #expect(cases.count > 100)
        for c in cases {
            let seed = try #require((c["seed"] as? NSNumber)?.uint64Value)
            var rng = PythonRandom(seed: seed)
            let expected = try #require(c["result"] as? [NSNumber]).map(\.uint64Value)
            switch c["op"] as? String {
            case "shuffle":
                let n = try #require(c["n"] as? Int)
                var x = Array(0..<n)
                rng.shuffle(&x)
                let got = (n <= 1000 ? x : Array(x.prefix(50) + x.suffix(50))).map(UInt64.init)
                #expect(got == expected, "shuffle of \(n) with seed \(seed)")
            case "sample":
                let n = try #require(c["n"] as? Int), k = try #require(c["k"] as? Int)
                #expect(rng.sample(Array(0..<n), k).map(UInt64.init) == expected, "sample(\(n), \(k)) with seed \(seed)")
            case "getrandbits":
                let bits = try #require(c["bits"] as? [Int])
                #expect(bits.map { rng.bits($0) } == expected)
            default:
                Issue.record("unknown case \(c)")
            }
        }
    }

    /// A shuffle takes exactly CPython's draws: the stream after it goes on as CPython's
    /// (`random.Random(7)`, shuffle of range(10), then `getrandbits(32)`; values from CPython).
    @Test func theStreamAfterAShuffleIsCPythons() {
        var rng = PythonRandom(seed: 7)
        var x = Array(0..<10)
        rng.shuffle(&x)
        #expect(x == [8, 3, 1, 4, 7, 0, 9, 6, 2, 5])
        #expect(rng.bits(32) == 3907149204)
        var other = PythonRandom(seed: 123)
        var y = Array(0..<5)
        other.shuffle(&y)
        #expect(y == [3, 1, 4, 2, 0] && other.bits(32) == 1144839923)
    }
}

@Suite struct CorePromptTests {
    /// A task's examples are shuffled as `random.Random(1337).shuffle` shuffles them
    /// (range(10) -> [0, 3, 7, 2, 1, 6, 4, 5, 8, 9] in CPython), then cut to the first
    /// core_metric_max_per_task: 1 keeps one, a count at or over the task's size or ≤ 0 keeps all.
    @Test func evaluationOrderIsCPythonsShuffleCut() {
        let shuffled = [0, 3, 7, 2, 1, 6, 4, 5, 8, 9]
        #expect(CorePrompts.evaluationOrder(Array(0..<10), maxPerTask: nil) == shuffled)
        for cut in [1, 3, 9] {
            #expect(CorePrompts.evaluationOrder(Array(0..<10), maxPerTask: cut) == Array(shuffled.prefix(cut)), "max \(cut)")
        }
        for all in [0, -1, 10, 11] {
            #expect(CorePrompts.evaluationOrder(Array(0..<10), maxPerTask: all) == shuffled, "max \(all)")
        }
    }

    /// The templates written out, pinned by value (independent of the nanochat fixture).
    @Test func renderingFollowsNanochatsTemplates() {
        let mc = CoreItem.multipleChoice(query: "Q: sky?", choices: ["blue", "green"], gold: 0)
        let shot = CoreItem.multipleChoice(query: "Q: grass?", choices: ["red", "green"], gold: 1)
        #expect(CorePrompts.render(mc, fewShot: [shot, shot], delimiter: " A: ")
                == ["Q: grass? A: green\n\nQ: grass? A: green\n\nQ: sky? A: blue", "Q: grass? A: green\n\nQ: grass? A: green\n\nQ: sky? A: green"])
        let schema = CoreItem.schema(contextOptions: ["Anna ate", "Bob ran"], continuation: "fast.", gold: 1)
        let schemaShot = CoreItem.schema(contextOptions: ["x", "y"], continuation: "z", gold: 0)
        #expect(CorePrompts.render(schema, fewShot: [schemaShot], delimiter: " ") == ["x z\n\nAnna ate fast.", "x z\n\nBob ran fast."])
        // Language modelling: contexts trimmed (Python's strip), the first prompt stripped whole.
        let lm = CoreItem.languageModeling(context: "  The end \n", continuation: "now ")
        let lmShot = CoreItem.languageModeling(context: "\u{2003}Begin\u{1F}", continuation: "then")
        #expect(CorePrompts.render(lm, fewShot: [lmShot], delimiter: " ") == ["Begin then\n\nThe end", "Begin then\n\nThe end now "])
        #expect(CorePrompts.render(lm, fewShot: [], delimiter: "\n") == ["The end", "The end\nnow "])
        #expect(CorePrompts.pythonStrip("\u{85}\u{A0}a b\u{3000}\u{1C}") == "a b")
        #expect(CorePrompts.pythonStrip("\u{200B}x") == "\u{200B}x")   // a zero-width space is not Python whitespace
    }

    @Test func spansAreTheCommonPrefixSuffixOrTheAddedTokens() throws {
        let tok = try Tokenizer.load(from: testTokenizer)
        let bos = tok.bosID
        let mc = try CorePrompts.batch(["The cat sat", "The cat ran away"], type: .multipleChoice, tokenizer: tok)
        let a = [bos] + tok.encode("The cat sat"), b = [bos] + tok.encode("The cat ran away")
        var common = 0
        while common < min(a.count, b.count) && a[common] == b[common] { common += 1 }
        #expect(common >= 2)
        #expect(mc.tokens == [a, b] && mc.starts == [common, common] && mc.ends == [a.count, b.count])
        let schema = try CorePrompts.batch(["Anna said hello there", "Bob said hello there"], type: .schema, tokenizer: tok)
        let s0 = schema.tokens[0], s1 = schema.tokens[1]
        var suffix = 0
        while suffix < min(s0.count, s1.count) && s0[s0.count - 1 - suffix] == s1[s1.count - 1 - suffix] { suffix += 1 }
        #expect(suffix >= 2 && schema.starts == [s0.count - suffix, s1.count - suffix] && schema.ends == [s0.count, s1.count])
        let lm = try CorePrompts.batch(["To be or not", "To be or not to be"], type: .languageModeling, tokenizer: tok)
        let without = [bos] + tok.encode("To be or not")
        #expect(lm.tokens == [[bos] + tok.encode("To be or not to be")] && lm.starts == [without.count] && lm.ends == [lm.tokens[0].count])
        // A continuation that joins the context's last characters when tokenized cannot be
        // cut as nanochat cuts it: refused, not scored on shifted tokens.
        #expect(throws: CoreBundleError.self) { try CorePrompts.batch(["The end.", "The end.\n\nNext:"], type: .languageModeling, tokenizer: tok) }
    }
}

@Suite struct CoreAgainstNanochatTests {
    /// Every recorded example's prompts, ids, spans, losses and prediction, every task's
    /// accuracy and CORE, against nanochat's core_eval on the same model and bundle.
    @Test func coreEqualsNanochatsOnTheSameModel() throws {
        let fixture = try fixtureJSON("core_nanochat.json")
        let maxPerTask = try #require(fixture["max_per_task"] as? Int)
        let (model, _) = try Checkpoint.load(from: evaluationFixtures + "/model")
        let tok = try Tokenizer.load(from: testTokenizer)
        let bundle = try CoreBundle(directory: shakespeareBundle)
        let tasks = try #require(fixture["tasks"] as? [[String: Any]])
        #expect(tasks.map { $0["label"] as? String } == bundle.tasks.map(\.label))
        #expect(Set(bundle.tasks.map(\.type)) == Set(CoreTaskType.allCases))
        var results: [CoreTaskResult] = []
        try Precision.with(.float32) {
            for (task, expected) in zip(bundle.tasks, tasks) {
                let examples = CorePrompts.evaluationOrder(try bundle.examples(of: task), maxPerTask: maxPerTask)
                #expect(examples.count == maxPerTask)
                // The shuffle: the first examples are nanochat's first.
                let first = try #require(expected["shuffled_first"] as? [String])
                for (i, line) in first.enumerated() {
                    let item = try CoreBundle.item(Substring(line), type: task.type, at: "fixture")
                    #expect(examples[i].item == item, "\(task.label): example \(i) after the shuffle")
                }
                for record in try #require(expected["examples"] as? [[String: Any]]) {
                    let index = try #require(record["index"] as? Int)
                    let r = try CoreScoring.evaluate(examples, index: index, task: task, model: model, tokenizer: tok)
                    let at = "\(task.label) example \(index)"
                    #expect(r.batch.prompts == (record["prompts"] as? [String])?.suffix(r.batch.prompts.count).map { $0 }, "\(at): prompts")
                    #expect(r.batch.tokens == (record["tokens"] as? [[Int]])?.map { $0.map(Int32.init) }, "\(at): tokens")
                    #expect(r.batch.starts == record["starts"] as? [Int] && r.batch.ends == record["ends"] as? [Int], "\(at): spans")
                    #expect(r.correct == record["correct"] as? Bool, "\(at): correct")
                    if let losses = record["mean_losses"] as? [Double] {
                        #expect(r.meanLosses.count == losses.count)
                        for (got, want) in zip(r.meanLosses, losses) { #expect(abs(got - want) <= 2e-5 * max(1, abs(want)), "\(at): \(got) vs \(want)") }
                        // The prediction is nanochat's unless two choices are within the tolerance.
                        let sorted = losses.sorted()
                        if sorted.count < 2 || sorted[1] - sorted[0] > 1e-4 {
                            #expect(r.predicted == losses.firstIndex(of: sorted[0]), "\(at): prediction")
                        }
                    }
                    if let predicted = record["predicted_tokens"] as? [Int] {
                        // This model's greedy tokens over the continuation, as nanochat's argmax gives them.
                        let scored = r.batch.tokens[0][r.batch.starts[0]..<r.batch.ends[0]]
                        let expectedCorrect = zip(predicted, scored).allSatisfy { Int32($0) == $1 }
                        #expect(r.correct == expectedCorrect, "\(at): greedy match")
                    }
                }
                let correct = try CoreScoring.evaluate(examples, task: task, indices: Array(examples.indices), model: model, tokenizer: tok)
                let result = CoreTaskResult(task: task, examples: examples.count, correct: correct)
                // nanochat's accuracy is a float32 mean: the count it stands for, then the value to float32 rounding.
                let theirs = try #require(expected["accuracy"] as? Double)
                #expect(correct == Int((theirs * Double(examples.count)).rounded()), "\(task.label): examples right")
                #expect(abs(result.accuracy - theirs) < 1e-6, "\(task.label): accuracy")
                #expect(abs(result.centered - (expected["centered"] as? Double ?? -1)) < 2e-6, "\(task.label): centred")
                results.append(result)
            }
        }
        #expect(abs(CoreScoring.core(results) - (fixture["core_metric"] as? Double ?? -1)) < 2e-6)
        // Not all right or all wrong: the comparison sees both outcomes.
        #expect(results.contains { $0.correct > 0 } && results.contains { $0.correct < $0.examples })
    }

    /// Positions a slice reads, as Python reads `range(n)[a:b]`; centring.
    @Test func slicesAndCentring() {
        #expect(CoreScoring.slice(1, 4, length: 5) == 1..<4)
        #expect(CoreScoring.slice(-1, 3, length: 5).isEmpty && CoreScoring.slice(-1, 3, length: 5).lowerBound == 4)
        #expect(CoreScoring.slice(-3, -1, length: 5) == 2..<4)
        #expect(CoreScoring.slice(2, 10, length: 5) == 2..<5)
        #expect(CoreScoring.slice(4, 2, length: 5).isEmpty)
        #expect(CoreScoring.slice(-9, 2, length: 5) == 0..<2)
        #expect(CoreScoring.centered(0.25, baseline: 25) == 0 && CoreScoring.centered(1, baseline: 25) == 1)
        #expect(abs(CoreScoring.centered(0.5, baseline: 25) - 1.0 / 3) < 1e-15)
        #expect(abs(CoreScoring.centered(0.1, baseline: 50) - -0.8) < 1e-15)
    }

    /// Identical contexts leave a schema item nothing to score: nanochat's slice from -1 reads
    /// no position, the means are NaN, and its min keeps the first choice.
    @Test func aSchemaItemWithIdenticalContextsPicksTheFirst() throws {
        let (model, _) = try Checkpoint.load(from: evaluationFixtures + "/model")
        let tok = try Tokenizer.load(from: testTokenizer)
        let item = CoreItem.schema(contextOptions: ["Good morrow", "Good morrow"], continuation: "my lord", gold: 1)
        let task = CoreTask(label: "t", type: .schema, datasetURI: "t.jsonl", fewShot: 0, delimiter: " ", randomBaseline: 50)
        let r = try CoreScoring.evaluate([CoreExample(item: item, source: "t.jsonl:1")], index: 0, task: task, model: model, tokenizer: tok)
        #expect(r.batch.starts == [0, 0] && r.meanLosses.allSatisfy(\.isNaN) && r.predicted == 0 && !r.correct)
    }

    /// Choices that score the same (a model whose zero head gives every token the loss ln V,
    /// and choices of equal length) leave the first as the prediction, as torch's argmin does.
    @Test func equalLossesPickTheFirstChoice() throws {
        let tok = try Tokenizer.load(from: testTokenizer)
        let model = try GPT(config: ModelConfig(sequenceLen: 64, vocabSize: tok.vocabSize, nLayer: 1, nHead: 1, nKVHead: 1, nEmbd: 16,
                                                blockPattern: [.transformer]), seed: 1)
        let task = CoreTask(label: "t", type: .multipleChoice, datasetURI: "t.jsonl", fewShot: 0, delimiter: " ", randomBaseline: 25)
        for gold in [1, 2] {
            let item = CoreItem.multipleChoice(query: "Good morrow,", choices: ["my lord", "my lady", "my lord"], gold: gold)
            let r = try CoreScoring.evaluate([CoreExample(item: item, source: "t.jsonl:1")], index: 0, task: task, model: model, tokenizer: tok)
            #expect(r.meanLosses.count == 3 && Set(r.meanLosses).count == 1, "\(r.meanLosses)")
            #expect(r.predicted == 0 && !r.correct)
        }
    }
}

@Suite struct CoreBundleErrorTests {
    /// A bundle of one task of each type in a fresh directory, with `edit` applied to its files.
    func bundle(_ edit: (String) throws -> Void) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("core-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir + "/eval_data/sub", withIntermediateDirectories: true)
        try """
        icl_tasks:
        - label: mc
          dataset_uri: sub/mc.jsonl
          num_fewshot: [1]
          icl_task_type: multiple_choice
        - label: lm
          dataset_uri: lm.jsonl
          num_fewshot: [0]
          icl_task_type: language_modeling
          continuation_delimiter: "\\nAnswer: "
        """.write(toFile: dir + "/core.yaml", atomically: true, encoding: .utf8)
        try "Eval Task,Random baseline,Other\n\"mc\",25,x\nlm,0.0,y\n".write(toFile: dir + "/eval_meta_data.csv", atomically: true, encoding: .utf8)
        try "{\"query\": \"a\", \"choices\": [\"b\", \"c\"], \"gold\": 1}\n\n{\"query\": \"d\", \"choices\": [\"e\", \"f\"], \"gold\": 0}\n"
            .write(toFile: dir + "/eval_data/sub/mc.jsonl", atomically: true, encoding: .utf8)
        try "{\"context\": \"x\", \"continuation\": \"y\"}\n".write(toFile: dir + "/eval_data/lm.jsonl", atomically: true, encoding: .utf8)
        try edit(dir)
        return dir
    }

    func message(_ body: () throws -> Void) -> String {
        do { try body(); return "no error" } catch { return "\(error)" }
    }

    @Test func aGoodBundleReads() throws {
        let dir = try bundle { _ in }
        let b = try CoreBundle(directory: dir)
        #expect(b.tasks.map(\.label) == ["mc", "lm"] && b.tasks.map(\.fewShot) == [1, 0])
        #expect(b.tasks[1].delimiter == "\nAnswer: " && b.tasks[0].delimiter == " " && b.tasks.map(\.randomBaseline) == [25, 0])
        #expect(try b.examples(of: b.tasks[0]).map(\.source) == [dir + "/eval_data/sub/mc.jsonl:1", dir + "/eval_data/sub/mc.jsonl:3"])
    }

    /// eval_meta_data.csv as RFC 4180 quotes it: a task name with a comma, a doubled quote
    /// and a newline inside quotes is one field, matched to core.yaml's label.
    @Test func quotedBaselineNamesReadWhole() throws {
        let dir = try bundle { dir in
            let yaml = try String(contentsOfFile: dir + "/core.yaml", encoding: .utf8)
            try yaml.replacingOccurrences(of: "- label: lm", with: "- label: \"say \\\"hi\\\", twice\\nnow\"")
                .write(toFile: dir + "/core.yaml", atomically: true, encoding: .utf8)
            try "Eval Task,Random baseline\n\"mc\",25\n\"say \"\"hi\"\", twice\nnow\",12.5\n"
                .write(toFile: dir + "/eval_meta_data.csv", atomically: true, encoding: .utf8)
        }
        let b = try CoreBundle(directory: dir)
        #expect(b.tasks.map(\.label) == ["mc", "say \"hi\", twice\nnow"])
        #expect(b.tasks.map(\.randomBaseline) == [25, 12.5])
    }

    @Test func badBundlesAreNamedByFileLineAndField() throws {
        func failing(_ edit: @escaping (String) throws -> Void, task: Int = 0) throws -> String {
            let dir = try bundle(edit)
            return message {
                let b = try CoreBundle(directory: dir)
                _ = try b.examples(of: b.tasks[task])
            }
        }
        func write(_ text: String, _ file: String) -> (String) throws -> Void {
            { dir in try text.write(toFile: dir + "/" + file, atomically: true, encoding: .utf8) }
        }
        let missingFile = try failing({ dir in try FileManager.default.removeItem(atPath: dir + "/eval_data/lm.jsonl") }, task: 1)
        #expect(missingFile.contains("eval_data/lm.jsonl") && missingFile.contains("cannot read"))
        let malformed = try failing(write("{\"query\": \"a\", \"choices\": [\"b\"], \"gold\": 0}\n{\"query\": \"a\",\n", "eval_data/sub/mc.jsonl"))
        #expect(malformed.contains("mc.jsonl:2") && malformed.contains("not a JSON object"))
        let wrongType = try failing(write("{\"query\": 5, \"choices\": [\"b\"], \"gold\": 0}\n", "eval_data/sub/mc.jsonl"))
        #expect(wrongType.contains("mc.jsonl:1") && wrongType.contains("\"query\" must be a string"))
        let boolGold = try failing(write("{\"query\": \"q\", \"choices\": [\"b\", \"c\"], \"gold\": true}\n", "eval_data/sub/mc.jsonl"))
        #expect(boolGold.contains("mc.jsonl:1") && boolGold.contains("\"gold\"") && boolGold.contains("true"))
        let goldRange = try failing(write("{\"query\": \"q\", \"choices\": [\"b\", \"c\"], \"gold\": 2}\n{\"query\": \"q\", \"choices\": [\"b\"], \"gold\": 0}\n", "eval_data/sub/mc.jsonl"))
        #expect(goldRange.contains("mc.jsonl:1") && goldRange.contains("0..<2"))
        let choiceType = try failing(write("{\"query\": \"q\", \"choices\": [\"b\", 3], \"gold\": 0}\n", "eval_data/sub/mc.jsonl"))
        #expect(choiceType.contains("\"choices\"[1]"))
        let tooFew = try failing(write("{\"query\": \"q\", \"choices\": [\"b\"], \"gold\": 0}\n", "eval_data/sub/mc.jsonl"))
        #expect(tooFew.contains("1-shot needs more than 1 examples"))
        let noBaseline = try failing(write("Eval Task,Random baseline\nmc,25\n", "eval_meta_data.csv"))
        #expect(noBaseline.contains("eval_meta_data.csv") && noBaseline.contains("\"lm\""))
        let badBaseline = try failing(write("Eval Task,Random baseline\nmc,25\nlm,abc\n", "eval_meta_data.csv"))
        #expect(badBaseline.contains("eval_meta_data.csv:3") && badBaseline.contains("abc"))
        // A blank line is skipped; a row of one field is not a blank line.
        let oneField = try failing(write("Eval Task,Random baseline\nmc,25\n\nlm\nlm,0\n", "eval_meta_data.csv"))
        #expect(oneField.contains("eval_meta_data.csv:4: 1 fields, the header has 2"))
        let noColumn = try failing(write("Task,Baseline\nmc,25\n", "eval_meta_data.csv"))
        #expect(noColumn.contains("\"Random baseline\""))
        let badType = try failing(write("icl_tasks:\n- label: mc\n  dataset_uri: m.jsonl\n  num_fewshot: [0]\n  icl_task_type: generation\n", "core.yaml"))
        #expect(badType.contains("core.yaml") && badType.contains("\"mc\"") && badType.contains("generation"))
        let badShots = try failing(write("icl_tasks:\n- label: mc\n  dataset_uri: m.jsonl\n  num_fewshot: [-1]\n  icl_task_type: schema\n", "core.yaml"))
        #expect(badShots.contains("num_fewshot"))
        let escape = try failing(write("icl_tasks:\n- label: mc\n  dataset_uri: ../../etc/passwd\n  num_fewshot: [0]\n  icl_task_type: schema\n", "core.yaml"))
        #expect(escape.contains("inside eval_data"))
        let notYAML = try failing(write("icl_tasks: [\n", "core.yaml"))
        #expect(notYAML.contains("core.yaml") && notYAML.contains("YAML"))
        let twice = try failing(write("icl_tasks:\n- label: mc\n  dataset_uri: a\n  num_fewshot: [0]\n  icl_task_type: schema\n- label: mc\n  dataset_uri: b\n  num_fewshot: [0]\n  icl_task_type: schema\n", "core.yaml"))
        #expect(twice.contains("listed twice"))
        let unclosed = try failing(write("Eval Task,Random baseline\n\"mc,25\n", "eval_meta_data.csv"))
        #expect(unclosed.contains("not closed"))
        let noDirectory = message { _ = try CoreBundle(directory: "/nonexistent/bundle") }
        #expect(noDirectory.contains("/nonexistent/bundle"))
    }
}

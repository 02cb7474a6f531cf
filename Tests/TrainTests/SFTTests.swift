// Fine-tuning data: rows packed from whole conversations with their masks, and the synthetic
// tasks' held-out questions.
import Foundation
import Testing
import Blocks
import Inference
import Tensor
import Tokenizer
import Train

@Suite struct SFTTests {
    let tokenizer: Tokenizer

    init() throws { tokenizer = try Tokenizer.load(from: tokenizerFixtures + "/tokenizer") }

    /// Rows hold whole conversations (each from its <|bos|>), padded with <|bos|>; a target is
    /// learned exactly where the conversation's render mask marks the assistant's tokens.
    @Test func sftRowsPackWholeConversationsAndMaskTheRest() throws {
        let conversations = (0..<6).map { ChatTask.arithmetic.conversation(seed: UInt64($0)) }
        let rendered = try conversations.map { try tokenizer.render($0) }
        let sequence = rendered.map(\.ids.count).max()! * 2 + 7
        var batcher = try SFTBatcher(conversations, tokenizer: tokenizer, batch: 3, sequence: sequence)
        let (x, y) = batcher.next()
        #expect(x.shape == [3, sequence] && y.shape == [3, sequence])
        var packed = 0
        for r in 0..<3 {
            let row = Array(x.values[(r * sequence)..<((r + 1) * sequence)]), targets = Array(y.values[(r * sequence)..<((r + 1) * sequence)])
            var p = 0
            // Whole conversations, one after another.
            while p < sequence, let c = rendered.first(where: { p + $0.ids.count <= sequence && Array(row[p..<(p + $0.ids.count)]) == $0.ids }) {
                for k in 0..<(c.ids.count - 1) {
                    let want = c.mask[k + 1] == 1 ? c.ids[k + 1] : ignoreIndex
                    #expect(targets[p + k] == want, "row \(r), position \(p + k)")
                }
                p += c.ids.count
                packed += 1
            }
            #expect(p > 0, "row \(r) holds a conversation")
            // A last conversation may end exactly at the row's T + 1 tokens, its last token
            // only a target.
            if p < sequence, let c = rendered.first(where: { $0.ids.count == sequence + 1 - p && Array(row[p...]) == Array($0.ids.dropLast()) }) {
                for k in 0..<(c.ids.count - 1) { #expect(targets[p + k] == (c.mask[k + 1] == 1 ? c.ids[k + 1] : ignoreIndex)) }
                packed += 1
                continue
            }
            // The rest is padding, learned nowhere (nor is the last real token's target).
            #expect(row[p...].allSatisfy { $0 == tokenizer.bosID })
            #expect(targets[max(0, p - 1)...].allSatisfy { $0 == ignoreIndex })
        }
        #expect(packed == batcher.consumed && packed >= 3 * 2)
    }

    /// Which conversation goes where: a buffer of the next 100 (the list cycling), each row
    /// filled by the longest that still fits (the earliest buffered of equal length), padding
    /// when none fits; replayed here on the rendered lengths over 150 conversations, many of
    /// equal length, for more rows than one pass of the buffer.
    @Test func rowsTakeTheLongestConversationThatFitsFirstComeFirst() throws {
        let tasks: [ChatTask] = [.identity, .arithmetic, .spelling]
        let conversations = (0..<150).map { tasks[$0 % 3].conversation(seed: UInt64($0)) }
        let sequence = 160, batch = 4
        let rendered = try conversations.map { try tokenizer.render($0, maxTokens: sequence + 1) }
        #expect(Set(rendered.map(\.ids.count)).count < 100, "lengths repeat, so ties are chosen between")
        var batcher = try SFTBatcher(conversations, tokenizer: tokenizer, batch: batch, sequence: sequence)
        var buffer: [Int] = [], cursor = 0, taken = 0
        for b in 0..<30 {
            let (x, y) = batcher.next()
            for r in 0..<batch {
                var row: [Int32] = [], content = sequence + 1
                while row.count < sequence + 1 {
                    while buffer.count < 100 { buffer.append(cursor); cursor = (cursor + 1) % rendered.count }
                    let room = sequence + 1 - row.count
                    var best: Int? = nil
                    for (k, i) in buffer.enumerated() where rendered[i].ids.count <= room {
                        if best.map({ rendered[i].ids.count > rendered[buffer[$0]].ids.count }) ?? true { best = k }
                    }
                    if let k = best {
                        row += rendered[buffer.remove(at: k)].ids
                        taken += 1
                    } else {
                        content = row.count
                        row += Array(repeating: tokenizer.bosID, count: room)
                    }
                }
                let got = Array(x.values[(r * sequence)..<((r + 1) * sequence)])
                #expect(got == Array(row.prefix(sequence)), "batch \(b), row \(r)")
                #expect(y.values[(r * sequence) + content - 1..<((r + 1) * sequence)].allSatisfy { $0 == ignoreIndex },
                        "batch \(b), row \(r): no target in the padding")
            }
            #expect(batcher.consumed == taken)
        }
        #expect(taken > 150, "the conversations cycled")
    }

    /// The validation loss is the mean over the unmasked targets only, each loss computed
    /// here from the logits in Double: rows that pack several conversations, padding and
    /// the user's tokens (ignored) must not count.
    @Test func validationLossIsTheMeanOverAssistantTokens() throws {
        let conversations = (0..<5).map { ChatTask.arithmetic.conversation(seed: UInt64(100 + $0)) }
        let sequence = 48, batch = 2
        // Weights off their init: its zero head would give every token the same loss.
        let config = ModelConfig(sequenceLen: sequence, vocabSize: tokenizer.vocabSize, nLayer: 2, nHead: 2, nKVHead: 2,
                                 nEmbd: 32, blockPattern: [.transformer, .mamba])
        let initial = ParameterSet.initialized(config, seed: 5)
        var g = SeededGenerator(seed: 6)
        let model = try GPT(config: config, parameters: initial.replacingTensors(initial.tensors.map { t in
            Tensor(shape: t.shape, scalars: zip(t.doubles, Tensor.randomNormal(t.shape, std: 0.3, generator: &g).doubles).map(+))
        }))
        var batcher = try SFTBatcher(conversations, tokenizer: tokenizer, batch: batch, sequence: sequence)
        var sum = 0.0, counted = 0, ignored = 0, sumAll = 0.0
        let v = tokenizer.vocabSize
        while batcher.consumed < conversations.count {
            let (x, y) = batcher.next()
            let logits = model.logits(x).doubles
            for (p, target) in y.values.enumerated() {
                let row = logits[(p * v)..<((p + 1) * v)]
                let top = row.max() ?? 0
                let logSum = top + Foundation.log(row.map { Foundation.exp($0 - top) }.reduce(0, +))
                let loss = logSum - row[row.startIndex + Int(target == ignoreIndex ? x.values[p] : target)]
                sumAll += loss
                if target == ignoreIndex { ignored += 1; continue }
                sum += loss
                counted += 1
            }
        }
        #expect(counted > 0 && ignored > 0, "\(counted) assistant targets, \(ignored) ignored")
        let got = SFTRun.validationLoss(model, conversations, tokenizer: tokenizer, batch: batch, sequence: sequence)
        let want = sum / Double(counted)
        #expect(abs(got - want) < 1e-5 * want, "validation loss \(got), the mean over assistant targets \(want)")
        #expect(abs(got - sumAll / Double(counted + ignored)) > 1e-3, "the ignored targets must make a difference to this check")
    }

    /// A reply holds the answer when the answer stands as its own number or word: not inside a
    /// longer one, not negated by a minus the answer lacks; any occurrence will do.
    @Test func aReplyHoldsTheAnswerOnlyAsAWholeNumberOrWord() {
        let holds = [("The answer is 12.", "12"), ("12", "12"), ("(12)", "12"), ("12,5", "12"), ("x = -12", "-12"),
                     ("a12 then 12", "12"), ("berry, the word", "berry"), ("1 2 3 12", "12")]
        let lacks = [("123", "12"), ("112", "12"), ("x12", "12"), ("12a", "12"), ("-12", "12"), ("strawberry", "berry"),
                     ("berryish", "berry"), ("", "12"), ("1 2", "12"), ("a12b 312", "12")]
        for (reply, answer) in holds { #expect(ChatEvaluation.contains(reply, answer), "\"\(reply)\" holds \(answer)") }
        for (reply, answer) in lacks { #expect(!ChatEvaluation.contains(reply, answer), "\"\(reply)\" lacks \(answer)") }
    }

    /// Grading: right when the assistant's own words hold the answer and every word asked
    /// about; the calculator's «…» does not count; the first three replies are kept as shown.
    @Test func aRightReplyHasTheAnswerAndTheWordInItsOwnWords() {
        var asked: [String] = []
        let r = ChatEvaluation.accuracy(task: .spelling, count: 8) { question in
            let i = asked.count
            asked.append(question)
            let (prompt, answer, mentions) = ChatTask.spelling.question(seed: UInt64(i))
            #expect(question == prompt, "question \(i) is the held-out question of seed \(i)")
            let word = mentions.joined(separator: " ")
            switch i % 4 {
            case 0: return "In \(word) there are «\(answer)» \(answer)."   // right, the tool's result beside it
            case 1: return "«\(answer)» is the count for \(word)"           // only the tool says it
            case 2: return "There are \(answer)."                           // the word is not named
            default: return "\(word): \(answer)0"                           // inside a longer number
            }
        }
        #expect(asked.count == 8 && r.total == 8)
        #expect(r.correct == 2, "\(r.correct) of 8 right; the replies of seeds 0 and 4 are")
        #expect(r.rate == 0.25)
        let none = ChatEvaluation.accuracy(task: .spelling, count: 0) { _ in "" }
        #expect(none.total == 0 && none.rate == 0 && none.examples.isEmpty)
        #expect(r.examples.count == 3 && r.examples.map(\.question) == Array(asked.prefix(3)))
        #expect(r.examples.first.map { $0.reply.contains("«") && $0.expected == ChatTask.spelling.question(seed: 0).answer } == true)
    }

    /// A model is asked each held-out question in a fresh conversation and answers greedily
    /// within `maxTokens`: the replies kept are those of a new greedy session per question.
    @Test func aModelAnswersEachQuestionGreedilyInAFreshConversation() throws {
        let model = try GPT(config: ModelConfig(sequenceLen: 64, vocabSize: tokenizer.vocabSize, nLayer: 2, nHead: 2, nKVHead: 2,
                                                nEmbd: 64, blockPattern: [.transformer, .mamba]), seed: 5)
        let r = ChatEvaluation.accuracy(model: model, tokenizer: tokenizer, task: .arithmetic, count: 4, maxTokens: 5)
        #expect(r.total == 4 && r.examples.count == 3)
        for (i, example) in r.examples.enumerated() {
            let question = ChatTask.arithmetic.question(seed: UInt64(i)).prompt
            #expect(example.question == question)
            let session = ChatSession(model: model, tokenizer: tokenizer, sampler: Sampler(temperature: 0, topK: 0, seed: 0),
                                      maxReplyTokens: 5)
            var shown = ""
            let reply = try session.reply(to: question) { piece in shown += piece.shown; return true }
            #expect(reply.generated == 5, "the untrained model runs to the limit")
            #expect(example.reply == shown, "question \(i)")
        }
    }

    /// The training order is a uniform shuffle (Fisher–Yates): over 2,000 seeds every one of
    /// the 120 orders of five conversations comes out, those that leave some in place among
    /// them (a shuffle that always moves every item, Sattolo's, reaches only the 24 cycles);
    /// each seed's order is fixed.
    @Test func theShuffleReachesEveryOrder() {
        let items = Array(0..<5)
        let orders = (0..<2000).map { SFTData.shuffled(items, seed: UInt64($0)) }
        #expect(Set(orders).count == 120)
        #expect(orders.allSatisfy { $0.sorted() == items })
        #expect(orders.contains { o in o.indices.contains { o[$0] == $0 } })
        #expect(SFTData.shuffled(items, seed: 7) == orders[7])
        #expect(SFTData.shuffled([42], seed: 3) == [42] && SFTData.shuffled([Int](), seed: 3).isEmpty)
    }

    /// `sft --data` files: each line's conversation in file order, lines of spaces and tabs
    /// passed over, parts kept; a line out of order named by file and line. The synthetic
    /// tasks interleave task by task, seed after seed.
    @Test func conversationsFromFilesAndTasks() throws {
        let dir = scratchPath("sft-data")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let lines = [
            #"{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}"#,
            " \t\r",
            #"{"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "2+2?"}, "#
                + #"{"role": "assistant", "content": [{"type": "python", "text": "2+2"}, {"type": "python_output", "text": "4"}]}]}"#,
            "",
        ]
        try lines.joined(separator: "\n").write(toFile: "\(dir)/a.jsonl", atomically: true, encoding: .utf8)
        try #"{"messages": [{"role": "user", "content": "last"}, {"role": "assistant", "content": "one"}]}"#
            .write(toFile: "\(dir)/b.jsonl", atomically: true, encoding: .utf8)
        let read = try SFTData.conversations(files: ["\(dir)/a.jsonl", "\(dir)/b.jsonl"])
        #expect(read == [
            Conversation([.init(.user, "hi"), .init(.assistant, "hello")]),
            Conversation([.init(.system, "be brief"), .init(.user, "2+2?"), .init(.assistant, parts: [.python("2+2"), .pythonOutput("4")])]),
            Conversation([.init(.user, "last"), .init(.assistant, "one")]),
        ])
        try (lines[0] + "\n" + #"{"messages": [{"role": "assistant", "content": "first"}]}"#)
            .write(toFile: "\(dir)/c.jsonl", atomically: true, encoding: .utf8)
        #expect { try SFTData.conversations(files: ["\(dir)/c.jsonl"]) } throws: { error in
            "\(error)".contains("c.jsonl") && "\(error)".contains("line 2: message 0 is from the assistant")
        }
        let tasks: [ChatTask] = [.spelling, .arithmetic]
        #expect(SFTData.synthetic(tasks, perTask: 2) == [ChatTask.spelling.conversation(seed: 0), ChatTask.arithmetic.conversation(seed: 0),
                                                          ChatTask.spelling.conversation(seed: 1), ChatTask.arithmetic.conversation(seed: 1)])
    }

    @Test func heldOutSpellingAsksAboutWordsNeverTrainedOn() {
        let trained = Set((0..<2000).map { ChatTask.spelling.conversation(seed: UInt64($0)).messages[0].plainTextForTests })
        for i in 0..<50 {
            let (prompt, _, mentions) = ChatTask.spelling.question(seed: UInt64(i))
            #expect(mentions.count == 1 && prompt.contains(mentions[0]))
            #expect(!trained.contains(prompt))
        }
    }
}

extension Conversation.Message {
    var plainTextForTests: String {
        parts.map { if case .text(let t) = $0 { return t } else { return "" } }.joined()
    }
}

/// Every optimiser group's rate, and the schedule's multiplier at chosen steps, against the
/// formulas of SPEC §2 with nanochat's numbers typed in here (not read from the code).
@Suite struct LearningRateTests {
    /// The base rate each parameter gets: Muon's for matrices, AdamW's per parameter.
    func rates(_ trainer: Trainer) -> (muon: Double, adam: [String: Double]) {
        (trainer.muon.lr, Dictionary(uniqueKeysWithValues: zip(trainer.adamNames, trainer.adam.lrs)))
    }

    func model() throws -> GPT {
        try GPT(config: ModelConfig(sequenceLen: 16, vocabSize: 300, nLayer: 2, nHead: 2, nKVHead: 2, nEmbd: 64,
                                    blockPattern: [.transformer, .mamba]), seed: 1)
    }

    func check(_ trainer: Trainer, matrix: Double, embedding: Double, head: Double, mamba: Double) {
        let scale = (64.0 / 768).squareRoot()   // the embedding and head rates are divided by (C/768)^½, C = 64
        let (muon, adam) = rates(trainer)
        #expect(abs(muon - matrix) < 1e-15, "Muon \(muon), wanted \(matrix)")
        #expect(abs((adam["transformer.wte.weight"] ?? .nan) - embedding / scale) < 1e-12)
        #expect(abs((adam["lm_head.weight"] ?? .nan) - head / scale) < 1e-12)
        let scalars = adam.filter { $0.key.hasPrefix("transformer.h.") }
        #expect(Set(scalars.keys) == ["transformer.h.1.mixer.A_log", "transformer.h.1.mixer.D", "transformer.h.1.mixer.conv1d.weight",
                                      "transformer.h.1.mixer.conv1d.bias", "transformer.h.1.mixer.dt_proj.bias"], "\(scalars.keys.sorted())")
        for (name, lr) in scalars { #expect(abs(lr - mamba) < 1e-15, "\(name): \(lr), wanted \(mamba)") }
    }

    /// The defaults docs/chat.md states: 64 conversations held out for the val loss (a tenth
    /// at most), rates at 0.8 of the base run's, decayed over the second half, seed 42.
    @Test func fineTuningDefaultsAreTheDocumentedOnes() {
        let s = SFTSettings(base: "base", output: "out")
        #expect(SFTRun.heldOut(of: 6000, s) == 64 && SFTRun.heldOut(of: 650, s) == 64 && SFTRun.heldOut(of: 639, s) == 63)
        #expect(SFTRun.heldOut(of: 300, s) == 30 && SFTRun.heldOut(of: 9, s) == 0)
        #expect(s.initLRFraction == 0.8 && s.warmdownRatio == 0.5 && s.seed == 42 && s.evalEvery == 50 && s.saveEvery == 0)
        #expect(s.deviceBatchSize == 8 && s.accumulation == 1 && s.numIterations == nil && s.baseStep == nil)
    }

    @Test func fineTuningRatesAreTheFractionOfEachGroups() throws {
        var s = SFTSettings(base: "base", output: "out")
        s.initLRFraction = 0.5
        s.warmdownRatio = 0.5
        let o = SFTRun.optimizer(s)
        check(Trainer(model: try model(), settings: o), matrix: 0.02 * 0.5, embedding: 0.2 * 0.5, head: 0.004 * 0.5, mamba: 0.004 * 0.5)
        // 10 steps: held at 1 for the first half, then linear to 0.
        let wanted = [1, 1, 1, 1, 1, 1, 0.8, 0.6, 0.4, 0.2]
        for (step, m) in wanted.enumerated() {
            let got = Schedule.lrMultiplier(step: step, total: 10, warmupRatio: o.warmupRatio, warmdownRatio: o.warmdownRatio,
                                            finalFraction: o.finalLRFraction)
            #expect(abs(got - m) < 1e-12, "step \(step): \(got), wanted \(m)")
        }
    }

    @Test func baseTrainingRatesAreTheConfigs() throws {
        let c = try parse("""
            depth = 2
            block_pattern = ["T", "M"]
            max_seq_len = 16
            device_batch_size = 1
            total_batch_size = 16
            num_iterations = 20
            matrix_lr = 0.03
            embedding_lr = 0.3
            unembedding_lr = 0.005
            mamba_lr = 0.006
            warmup_ratio = 0.1
            warmdown_ratio = 0.3
            final_lr_frac = 0.1
            n_embd = 64
            """)
        let settings = try TrainSettings.resolve(c, path: "rates.py", vocabSize: 300)
        let o = settings.optimizer
        check(Trainer(model: try model(), settings: o), matrix: 0.03, embedding: 0.3, head: 0.005, mamba: 0.006)
        // 20 steps: warm up over 2, hold to step 14, then down to 0.1 at step 20.
        let wanted: [Int: Double] = [0: 0.5, 1: 1, 2: 1, 14: 1, 15: 5.0 / 6 + 1.0 / 60, 17: 0.55, 19: 1.0 / 6 + 0.1 * 5 / 6, 20: 0.1]
        for (step, m) in wanted {
            let got = Schedule.lrMultiplier(step: step, total: 20, warmupRatio: o.warmupRatio, warmdownRatio: o.warmdownRatio,
                                            finalFraction: o.finalLRFraction)
            #expect(abs(got - m) < 1e-12, "step \(step): \(got), wanted \(m)")
        }
    }
}

/// `SFTRun.run` end to end on a tiny model: which conversations it holds out, how many steps
/// one pass takes, when it evaluates and saves, and the weights it ends with, each against what
/// the pieces it is made of give when driven here by hand; then a resume from a middle checkpoint
/// ending on the same bits.
@Suite(.serialized) struct SFTRunTests {
    @Test func aRunHoldsOutTrainsOnePassAndResumesToTheSameBits() throws {
        let tokenizer = try Tokenizer.load(from: tokenizerFixtures + "/tokenizer")
        let config = ModelConfig(sequenceLen: 64, vocabSize: tokenizer.vocabSize, nLayer: 2, nHead: 2, nKVHead: 2, nEmbd: 32,
                                 blockPattern: [.transformer, .mamba])
        let conversations = (0..<30).map { ChatTask.arithmetic.conversation(seed: UInt64(500 + $0)) }
        let out = scratchPath("sft")
        var s = SFTSettings(base: "base", output: out)
        s.deviceBatchSize = 2; s.sequenceLen = 64; s.accumulation = 2
        s.evalEvery = 2; s.saveEvery = 3; s.initLRFraction = 0.5; s.seed = 9

        // What the run must do, worked out from its parts: 30 conversations hold out a tenth (3),
        // the last of the shuffled order; one pass is as many steps of 2 micro-batches as it
        // takes the batcher to take each of the other 27 once.
        let order = SFTData.shuffled(conversations, seed: 9)
        let train = Array(order[..<27]), val = Array(order[27...])
        var probe = try SFTBatcher(train, tokenizer: tokenizer, batch: 2, sequence: 64)
        var steps = 0
        while probe.consumed < 27 { _ = probe.next(); _ = probe.next(); steps += 1 }
        #expect(steps >= 4, "the pass must be long enough to save and evaluate more than once (\(steps) steps)")
        let baseVal = SFTRun.validationLoss(try GPT(config: config, seed: 3), val, tokenizer: tokenizer, batch: 2, sequence: 64)
        // The same training by hand: its optimisers, its batches in order, its schedule's length.
        let byHand = try GPT(config: config, seed: 3)
        let trainer = Trainer(model: byHand, settings: SFTRun.optimizer(s))
        var batcher = try SFTBatcher(train, tokenizer: tokenizer, batch: 2, sequence: 64)
        for _ in 0..<steps { _ = try trainer.step([batcher.next(), batcher.next()], totalSteps: steps) }

        let summary = try SFTRun.run(base: try GPT(config: config, seed: 3), baseMeta: nil, tokenizer: tokenizer,
                                     conversations: conversations, settings: s, resume: false) { _ in }
        #expect(summary.steps == steps)
        let evaluated = Array(stride(from: 0, to: steps, by: 2)) + [steps]
        #expect(summary.valLoss.map(\.step) == evaluated)
        #expect(summary.valLoss.first?.loss == baseVal, "the first val loss is the base model's on the held-out conversations")
        let saved = Array(stride(from: 3, to: steps, by: 3)) + [steps]
        #expect(Checkpoint.steps(in: out) == saved)
        let final = try Checkpoint.load(from: out, step: steps).model
        func same(_ a: GPT, _ b: GPT, _ what: String) {
            for (p, q) in zip(a.parameters.parameters, b.parameters.parameters) {
                #expect(p.name == q.name && p.tensor.doubles == q.tensor.doubles, "\(what): \(p.name)")
            }
        }
        same(final, byHand, "the run against the training by hand")

        // Resumed from its first checkpoint (the later ones gone), it ends on the same bits.
        for step in saved.dropFirst() {
            for path in [Checkpoint.modelPath(out, step: step), Checkpoint.optimPath(out, step: step), Checkpoint.metaPath(out, step: step)] {
                try FileManager.default.removeItem(atPath: path)
            }
        }
        let resumed = try SFTRun.run(base: try GPT(config: config, seed: 3), baseMeta: nil, tokenizer: tokenizer,
                                     conversations: conversations, settings: s, resume: true) { _ in }
        #expect(resumed.steps == steps - 3)
        same(try Checkpoint.load(from: out, step: steps).model, byHand, "the resumed run")
    }
}

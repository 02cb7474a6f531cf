// The engine that decodes many requests together: rows stepped in one batch give what each
// gives alone; stop texts, max_tokens, cancellation and slots behave; top-p sampling.
import Foundation
import Blocks
import Tensor
import Testing
import Inference
import Tokenizer

@Suite struct EngineTests {
    let tokenizer: Tokenizer

    init() throws {
        tokenizer = try Tokenizer.load(from: tokenizerFixtures + "/tokenizer")
    }

    /// A small hybrid model in Float64, so rows decoded in different batches agree far below
    /// any difference between two logits; its weights moved off their init (whose zero head
    /// gives every input the same logits, which would hide a sequence given another's state).
    func model(_ pattern: [BlockKind] = [.transformer, .mamba]) throws -> GPT {
        let config = ModelConfig(sequenceLen: 128, vocabSize: tokenizer.vocabSize, nLayer: pattern.count, nHead: 2, nKVHead: 2,
                                 nEmbd: 32, blockPattern: pattern)
        let initial = ParameterSet.initialized(config, seed: 11, dtype: .float64)
        var g = SeededGenerator(seed: 12)
        return try GPT(config: config, parameters: initial.replacingTensors(initial.tensors.map { t in
            Tensor(shape: t.shape, scalars: zip(t.doubles, Tensor.randomNormal(t.shape, std: 0.2, dtype: .float64, generator: &g).doubles).map(+),
                   dtype: .float64)
        }))
    }

    /// Events of one request, collected.
    final class Collector: @unchecked Sendable {
        let lock = NSLock()
        var text = ""
        /// Text events that carried no text (a stream sends none).
        var emptyTexts = 0
        var finish: (FinishReason, Int, Int)?
        var promptScores: [TokenScore]?
        var scores: [TokenScore] = []
        let done = DispatchSemaphore(value: 0)
        func take(_ e: GenerationEvent) {
            lock.withLock {
                switch e {
                case .text(let t): text += t; emptyTexts += t.isEmpty ? 1 : 0
                case .finished(let r, let p, let c): finish = (r, p, c)
                case .prompt(let s): promptScores = s
                case .token(let s): scores.append(s)
                }
            }
            if case .finished = e { done.signal() }
        }
        func wait() -> (String, FinishReason?, Int) {
            _ = done.wait(timeout: .now() + 120)
            return lock.withLock { (text, finish?.0, finish?.2 ?? -1) }
        }
    }

    func request(_ prompt: String, maxTokens: Int, seed: UInt64, temperature: Double = 0, stop: [String] = []) -> GenerationRequest {
        GenerationRequest(prompt: [tokenizer.bosID] + tokenizer.encode(prompt), mode: .completion, maxTokens: maxTokens,
                          sampler: Sampler(temperature: temperature, topK: 0, seed: seed), stop: stop)
    }

    func run(_ engine: ChatEngine, _ requests: [GenerationRequest]) -> [(String, FinishReason?, Int)] {
        let collectors = requests.map { _ in Collector() }
        for (r, c) in zip(requests, collectors) { _ = engine.submit(r) { c.take($0) } }
        return collectors.map { $0.wait() }
    }

    /// A chat request whose model calls the calculator: the reply shows the call and its
    /// answer, decoding goes on from the answer fed between output markers, and
    /// <|assistant_end|> finishes it as "stop", its drawn tokens counted (the end's too, the
    /// forced answer's not). Beside it, the same request stopped by max_tokens is "length".
    @Test func aChatRequestCallsTheCalculatorAndStopsAtItsEnd() throws {
        let t = ChatTokens(tokenizer)
        let expr = tokenizer.encode("12+30"), done = tokenizer.encode(" Done")
        let m = try scriptedModel(tokenizer, chains: [[t.assistantStart, t.pythonStart] + expr + [t.pythonEnd],
                                                      [t.outputEnd] + done + [t.assistantEnd]])
        let prompt = [t.bos, t.userStart] + tokenizer.encode("Add them") + [t.userEnd, t.assistantStart]
        let engine = ChatEngine(model: m, tokenizer: tokenizer, slots: 2)
        engine.start()
        defer { engine.stop() }
        let drawn = 1 + expr.count + 1 + done.count + 1
        let chat = { (maxTokens: Int) in
            GenerationRequest(prompt: prompt, mode: .chat, maxTokens: maxTokens, sampler: Sampler(temperature: 0, topK: 0, seed: 0))
        }
        let results = run(engine, [chat(64), chat(drawn - 1)])
        #expect(results[0].0 == "«12+30 = 42» Done" && results[0].1 == .stop && results[0].2 == drawn, "\(results[0])")
        #expect(results[1].0 == "«12+30 = 42» Done" && results[1].1 == .length && results[1].2 == drawn - 1, "\(results[1])")
    }

    /// Drawn tokens are scored up to the end: a completion's closing <|bos|> is listed (as
    /// OpenAI lists its end of text), a chat reply's <|assistant_end|> is not.
    @Test func aCompletionScoresItsEndAndAChatReplyDoesNot() throws {
        let t = ChatTokens(tokenizer)
        // Each token of the two scripts leads to one next token: "ABC" (ids 65-67, single
        // bytes) shares none with " Done" or the prompts' last tokens.
        let words: [Int32] = [65, 66, 67], done = tokenizer.encode(" Done")
        let completionPrompt = [t.bos] + tokenizer.encode("Hi"), chatPrompt = [t.bos, t.userStart] + tokenizer.encode("Go") + [t.userEnd, t.assistantStart]
        let m = try scriptedModel(tokenizer, chains: [[completionPrompt[completionPrompt.count - 1]] + words + [t.bos],
                                                      [t.assistantStart] + done + [t.assistantEnd]])
        let engine = ChatEngine(model: m, tokenizer: tokenizer, slots: 2)
        engine.start()
        defer { engine.stop() }
        for (prompt, mode, drawn, scored) in [(completionPrompt, GenerationRequest.Mode.completion, words + [t.bos], words + [t.bos]),
                                              (chatPrompt, .chat, done + [t.assistantEnd], done)] {
            var r = GenerationRequest(prompt: prompt, mode: mode, maxTokens: 20, sampler: Sampler(temperature: 0, topK: 0, seed: 0))
            r.logprobs = 1
            let c = Collector()
            _ = engine.submit(r) { c.take($0) }
            let got = c.wait()
            #expect(got.1 == .stop && got.2 == drawn.count, "\(mode): \(got)")
            #expect(c.lock.withLock { c.scores.map(\.token) } == scored, "\(mode)")
        }
    }

    /// A reply cut by max_tokens inside a character ends with what it holds as U+FFFD (sent
    /// before the finish event), and one let run to the character's end shows the character.
    @Test func aReplyCutInsideACharacterEndsWithAReplacement() throws {
        let smile = tokenizer.encode("🙂"), prompt = [tokenizer.bosID] + tokenizer.encode("Hi")
        try #require(smile.count >= 2, "the test tokenizer writes 🙂 in one token")
        let m = try scriptedModel(tokenizer, chains: [[prompt[prompt.count - 1]] + smile])
        let engine = ChatEngine(model: m, tokenizer: tokenizer, slots: 2)
        engine.start()
        defer { engine.stop() }
        let completion = { (maxTokens: Int) in
            GenerationRequest(prompt: prompt, mode: .completion, maxTokens: maxTokens, sampler: Sampler(temperature: 0, topK: 0, seed: 0))
        }
        let results = run(engine, [completion(smile.count - 1), completion(smile.count)])
        #expect(results[0].0 == "\u{FFFD}" && results[0].1 == .length && results[0].2 == smile.count - 1, "\(results[0])")
        #expect(results[1].0 == "🙂" && results[1].1 == .length && results[1].2 == smile.count, "\(results[1])")
    }

    @Test(arguments: [[BlockKind.transformer, .mamba], [.mamba, .mamba], [.transformer, .transformer]])
    func requestsDecodedTogetherGiveWhatEachGivesAlone(_ pattern: [BlockKind]) throws {
        let m = try model(pattern)
        let prompts = ["The cat", "A much longer prompt than the others, to be sure", "x", "Once upon a time"]
        let requests = prompts.enumerated().map { i, p in request(p, maxTokens: 12 + 3 * i, seed: UInt64(i), temperature: i % 2 == 0 ? 0 : 0.9) }
        let alone = ChatEngine(model: m, tokenizer: tokenizer, slots: 1)
        alone.start()
        defer { alone.stop() }
        let one = requests.map { run(alone, [$0])[0] }
        let together = ChatEngine(model: m, tokenizer: tokenizer, slots: 8)
        together.start()
        defer { together.stop() }
        let all = run(together, requests)
        for i in requests.indices {
            #expect(all[i].0 == one[i].0, "\(pattern) request \(i): together \(all[i].0.debugDescription), alone \(one[i].0.debugDescription)")
            #expect(all[i].1 == one[i].1 && all[i].2 == one[i].2)
        }
        // They were stepped together: fewer steps than tokens.
        var status = together.status
        #expect(status.steps < status.generated, "steps \(status.steps), tokens \(status.generated)")
        // The engine counts a request out after its last event: wait for it.
        for _ in 0..<100 where status.running > 0 { usleep(10_000); status = together.status }
        #expect(status.running == 0 && status.waiting == 0)
        // Every drawn token is counted once, the first (drawn after the prompt) too; alone, a
        // request takes one step for each token but its last (which is never fed).
        #expect(status.generated == all.map(\.2).reduce(0, +), "\(status.generated) counted, \(all.map(\.2)) drawn")
        var single = alone.status
        for _ in 0..<100 where single.running > 0 { usleep(10_000); single = alone.status }
        #expect(single.generated == one.map(\.2).reduce(0, +) && single.steps == one.map { $0.2 - 1 }.reduce(0, +),
                "alone: \(single.generated) counted in \(single.steps) steps, \(one.map(\.2)) drawn")
    }

    /// The engine's batched step, by value: sequences of different prompts and lengths
    /// stepped together give, row for row, the logits each gives stepped alone (the Float64
    /// model agrees to rounding), and the rows differ from each other by far more, so a
    /// step that handed one sequence another's Mamba state or attention cache would fail.
    @Test(arguments: [[BlockKind.mamba, .mamba], [.transformer, .mamba], [.mamba, .transformer]])
    func aBatchedStepGivesEachSequenceItsOwnLogits(_ pattern: [BlockKind]) throws {
        let m = try model(pattern)
        let prompts = ["The cat", "A much longer prompt than the others, to be sure", "x", "Once upon a time there was"]
        func fresh() -> [DecodingSequence] {
            prompts.map { p in
                let s = DecodingSequence(model: m, sampler: Sampler(temperature: 0, topK: 0, seed: 0), expectedTokens: 64)
                _ = s.feed([tokenizer.bosID] + tokenizer.encode(p))
                return s
            }
        }
        let together = fresh(), alone = fresh()
        for step in 0..<4 {
            let tokens = prompts.indices.map { Int32(($0 * 37 + step * 11) % tokenizer.vocabSize) }
            let batched = DecodingSequence.step(together, tokens: tokens)
            let single = zip(alone, tokens).map { DecodingSequence.step([$0], tokens: [$1])[0] }
            for i in prompts.indices {
                let gap = zip(batched[i], single[i]).map { abs($0 - $1) }.max() ?? .infinity
                #expect(gap < 1e-9, "\(pattern) step \(step) sequence \(i): batched and alone differ by \(gap)")
                if i > 0 {
                    let apart = zip(single[i], single[0]).map { abs($0 - $1) }.max() ?? 0
                    #expect(apart > 1e-4, "\(pattern) step \(step): sequences \(i) and 0 have the same logits")
                }
            }
        }
    }

    /// A prompt's scores (echo with logprobs) are the model's log-probabilities of each
    /// token given those before it: minus the per-position cross entropy evaluation uses, on
    /// the same ids (to the Float the losses come back in); each with its most likely alternatives in order, the token's own among
    /// them when it is the likeliest. A request for scores alone (max_tokens 0) draws nothing.
    @Test(arguments: [[BlockKind.transformer, .mamba], [.mamba, .mamba], [.transformer, .transformer]])
    func promptScoresAreTheModelsLogProbabilities(_ pattern: [BlockKind]) throws {
        let m = try model(pattern)
        let ids = [tokenizer.bosID] + tokenizer.encode("The cat sat on the mat, and then it slept.")
        let losses = m.tokenLosses(IndexTensor(shape: [1, ids.count - 1], values: Array(ids.dropLast())),
                                   targets: IndexTensor(shape: [1, ids.count - 1], values: Array(ids.dropFirst())))
        let engine = ChatEngine(model: m, tokenizer: tokenizer, slots: 2)
        engine.start()
        defer { engine.stop() }
        var scoring = GenerationRequest(prompt: ids, mode: .completion, maxTokens: 0, sampler: Sampler(temperature: 0, topK: 0, seed: 1))
        scoring.promptLogprobs = 4
        let c = Collector()
        _ = engine.submit(scoring) { c.take($0) }
        _ = c.wait()
        let scores = try #require(c.lock.withLock { c.promptScores })
        #expect(scores.count == ids.count - 1 && c.lock.withLock { c.scores.isEmpty && c.text.isEmpty })
        #expect(c.lock.withLock { c.finish?.0 == .length && c.finish?.2 == 0 })
        for (i, score) in scores.enumerated() {
            #expect(score.token == ids[i + 1])
            // The losses come back as Float: equal to their rounding.
            #expect(abs(score.logprob + Double(losses[i])) < 2e-7 * max(1, Double(losses[i])), "position \(i): \(score.logprob) against \(-Double(losses[i]))")
            #expect(score.top.count == 4 && zip(score.top, score.top.dropFirst()).allSatisfy { $0.logprob >= $1.logprob })
            #expect(score.top[0].logprob >= score.logprob && score.top.allSatisfy { $0.logprob <= 0 })
            if let own = score.top.first(where: { $0.token == score.token }) { #expect(own.logprob == score.logprob) }
        }
        // Without scores asked for, max_tokens 0 is nothing to do.
        let nothing = run(engine, [GenerationRequest(prompt: ids, mode: .completion, maxTokens: 0, sampler: Sampler(temperature: 0, topK: 0, seed: 1))])
        #expect(nothing[0].1 == .length && nothing[0].2 == 0)
    }

    /// Bytes arriving one at a time become text only when a character is whole: 1-, 2-, 3-
    /// and 4-byte characters, and what is left at the end as U+FFFD.
    @Test func utf8StreamHoldsBackIncompleteCharacters() {
        for text in ["a", "é", "漢", "🙂", "a🙂é漢b"] {
            var stream = UTF8Stream()
            var out = "", emitted: [String] = []
            for byte in Array(text.utf8) {
                let piece = stream.push([byte])
                out += piece
                if !piece.isEmpty { emitted.append(piece) }
            }
            out += stream.finish()
            #expect(out == text && emitted == text.map(String.init), "\(text): \(emitted)")
        }
        var cut = UTF8Stream()
        #expect(cut.push(Array("🙂".utf8.prefix(3))) == "" && cut.finish() == "\u{FFFD}")
        // Bytes that are no character's become U+FFFD as soon as nothing can complete them: a
        // stray continuation byte, five in a row, a lead byte followed by a letter.
        var stray = UTF8Stream()
        #expect(stray.push([0x80]) == "\u{FFFD}" && stray.push([0x41]) == "A")
        #expect(stray.push([UInt8](repeating: 0x80, count: 5)) == String(repeating: "\u{FFFD}", count: 5))
        #expect(stray.push([0x41, 0xC3]) == "A" && stray.push([0x41]) == "\u{FFFD}A")
        #expect(stray.push([0xFF]) == "" && stray.push([0x42]) == "\u{FFFD}B" && stray.finish() == "")
    }

    /// The bias and penalties by value: presence once for a token generated at all, frequency
    /// once per time it was, the bias added, other tokens untouched.
    @Test func biasAndPenaltiesByValue() {
        var r = GenerationRequest(prompt: [1], mode: .completion, maxTokens: 1, sampler: Sampler(temperature: 0, topK: 0, seed: 0))
        r.logitBias = [2: 5, 4: -1.5]
        r.presencePenalty = 0.5
        r.frequencyPenalty = 0.25
        let out = r.adjusted([1, 1, 1, 1, 1, 1], counts: [0: 3, 2: 1, 5: 0])
        // Token 0: three times, 1 - (0.5 + 3 × 0.25); token 2: once and biased, 1 + 5 - (0.5 + 0.25).
        let want: [Double] = [-0.25, 1, 5.25, 1, -0.5, 1]
        #expect(out == want)
    }

    /// The drawn tokens under a logit bias and presence and frequency penalties are those of
    /// the same rule applied by hand to the model's logits, and each drawn token's reported
    /// score is of the model's own distribution (before the bias and penalties).
    @Test func logitBiasAndPenaltiesSteerTheDraw() throws {
        let m = try model([.transformer, .mamba])
        let prompt = [tokenizer.bosID] + tokenizer.encode("Once upon a time")
        let engine = ChatEngine(model: m, tokenizer: tokenizer, slots: 1)
        engine.start()
        defer { engine.stop() }
        let favoured = Int32(tokenizer.encode(" dog").last ?? 5)
        var sequences: Set<[Int32]> = []
        for (bias, presence, frequency) in [([:], 0.0, 0.0), ([favoured: 6.0], 0.0, 0.0), ([:], 1.5, 0.0), ([:], 0.0, 0.3), ([favoured: 2.0, 9: -100], 0.5, 0.4)]
            as [([Int32: Double], Double, Double)] {
            var r = GenerationRequest(prompt: prompt, mode: .completion, maxTokens: 12, sampler: Sampler(temperature: 0, topK: 0, seed: 3),
                                      ignoreEnd: true)
            r.logitBias = bias; r.presencePenalty = presence; r.frequencyPenalty = frequency; r.logprobs = 2
            let c = Collector()
            _ = engine.submit(r) { c.take($0) }
            _ = c.wait()
            let drawn = c.lock.withLock { c.scores }
            // By hand: the same model, logits adjusted, the largest taken.
            let s = DecodingSequence(model: m, sampler: Sampler(temperature: 0, topK: 0, seed: 3), expectedTokens: 32)
            var logits = s.feed(prompt)
            var counts: [Int32: Int] = [:], expected: [Int32] = [], raw: [[Double]] = []
            for _ in 0..<12 {
                var adjusted = logits
                for (t, b) in bias { adjusted[Int(t)] += b }
                for (t, n) in counts { adjusted[Int(t)] -= presence + frequency * Double(n) }
                let next = Int32(adjusted.indices.max { adjusted[$0] < adjusted[$1] || (adjusted[$0] == adjusted[$1] && $0 > $1) } ?? 0)
                expected.append(next); raw.append(logits)
                counts[next, default: 0] += 1
                logits = s.feed([next])
            }
            #expect(drawn.map(\.token) == expected, "bias \(bias), presence \(presence), frequency \(frequency)")
            for (score, row) in zip(drawn, raw) {
                let z = log(row.map { exp($0) }.reduce(0, +))
                #expect(abs(score.logprob - (row[Int(score.token)] - z)) < 1e-9 && score.top.count == 2)
            }
            sequences.insert(expected)
            if bias[favoured] == 6 { #expect(expected.contains(favoured)) }
            if presence > 0 && bias.isEmpty { #expect(Set(expected).count == expected.count, "presence 1.5 repeated a token: \(expected)") }
        }
        // Each setting drew another sequence: the rule was exercised, not skipped.
        #expect(sequences.count == 5, "\(sequences)")
    }

    /// A continuation's score is the sum of its tokens' log-probabilities after <|bos|> and
    /// the context (the per-position losses evaluation computes, negated and added); the
    /// context's closing spaces move to the continuation; a context too long for the model
    /// loses its first tokens, <|bos|> kept first.
    @Test func continuationsScoreAsHarnessesDo() throws {
        let m = try model([.transformer, .mamba])
        let (context, continuation) = Continuations.split(context: "The cat sat on the ", continuation: "mat", tokenizer: tokenizer)
        #expect(context == tokenizer.encode("The cat sat on the"))
        #expect(context + continuation == tokenizer.encode("The cat sat on the mat"))
        #expect(try tokenizer.decode(continuation) == " mat")
        // Every closing space moves, not only the last.
        let two = Continuations.split(context: "The cat sat on the  ", continuation: "mat", tokenizer: tokenizer)
        #expect(two.context == tokenizer.encode("The cat sat on the"))
        #expect(try tokenizer.decode(two.continuation) == "  mat")
        let ids = [tokenizer.bosID] + context + continuation
        let losses = m.tokenLosses(IndexTensor(shape: [1, ids.count - 1], values: Array(ids.dropLast())),
                                   targets: IndexTensor(shape: [1, ids.count - 1], values: Array(ids.dropFirst())))
        let want = -losses.suffix(continuation.count).map(Double.init).reduce(0, +)
        let s = Continuations.score(m, bos: tokenizer.bosID, context: context, continuation: continuation)
        #expect(abs(s.loglikelihood - want) < 1e-6 && s.truncated == 0 && s.contextTokens == context.count)
        // Greedy: the model's own choice after the context is greedy; a token it ranks lower is not.
        let sequence = DecodingSequence(model: m, sampler: Sampler(temperature: 0, topK: 0, seed: 0), expectedTokens: 64)
        let row = sequence.feed([tokenizer.bosID] + context)
        let best = Int32(row.indices.max { row[$0] < row[$1] || (row[$0] == row[$1] && $0 > $1) } ?? 0)
        let worst = Int32(row.indices.min { row[$0] < row[$1] } ?? 0)
        #expect(Continuations.score(m, bos: tokenizer.bosID, context: context, continuation: [best]).greedy)
        #expect(!Continuations.score(m, bos: tokenizer.bosID, context: context, continuation: [worst]).greedy)
        // Too long: the context's start goes, the rest scores as if given alone.
        let long = Array(repeating: context, count: 40).flatMap { $0 }
        #expect(long.count + continuation.count > m.config.sequenceLen)
        let cut = Continuations.score(m, bos: tokenizer.bosID, context: long, continuation: continuation)
        let kept = Array(long.suffix(m.config.sequenceLen - continuation.count))
        #expect(cut.truncated == long.count - kept.count && cut.contextTokens == kept.count)
        #expect(cut.loglikelihood == Continuations.score(m, bos: tokenizer.bosID, context: kept, continuation: continuation).loglikelihood)
        // A continuation of the whole context (T tokens after <|bos|>) fits and drops the
        // context entirely; one more token does not fit.
        let t = m.config.sequenceLen
        let whole = Array(long.prefix(t))
        #expect(Continuations.fits(whole, m) && !Continuations.fits(Array(long.prefix(t + 1)), m))
        let all = Continuations.score(m, bos: tokenizer.bosID, context: context, continuation: whole)
        let fed = [tokenizer.bosID] + whole
        let wholeLosses = m.tokenLosses(IndexTensor(shape: [1, t], values: Array(fed.dropLast())), targets: IndexTensor(shape: [1, t], values: whole))
        #expect(all.contextTokens == 0 && all.truncated == context.count && all.continuationTokens == t)
        // (tokenLosses gives Floats, each within 2⁻²⁴ of its value: about 6e-8 of the sum.)
        let total = wholeLosses.map(Double.init).reduce(0, +)
        #expect(abs(all.loglikelihood + total) <= 1e-7 * total + 1e-6, "\(all.loglikelihood) against \(-total)")
    }

    /// A sequence fed twice with scores (the second feed, under Mamba layers, a token at a
    /// time) scores each token of the second feed at its own position: as one feed of all
    /// the tokens scores them.
    @Test func aSecondFeedScoresItsOwnTokens() throws {
        for pattern: [BlockKind] in [[.transformer, .mamba], [.transformer]] {
            let m = try model(pattern)
            let ids = [tokenizer.bosID] + tokenizer.encode("Once upon a time there was a cat")
            let whole = DecodingSequence(model: m, sampler: Sampler(temperature: 0, topK: 0, seed: 0), expectedTokens: 64)
                .feed(ids, scoringTop: 3)
            let split = DecodingSequence(model: m, sampler: Sampler(temperature: 0, topK: 0, seed: 0), expectedTokens: 64)
            _ = split.feed(Array(ids.prefix(3)))
            let rest = split.feed(Array(ids.dropFirst(3)), scoringTop: 3)
            // whole.scores[i] scores ids[i + 1]; the second feed scores ids[4...].
            let want = Array(whole.scores.dropFirst(3))
            #expect(whole.scores.map(\.token) == Array(ids.dropFirst()) && want.count == ids.count - 4)
            #expect(rest.scores.map(\.token) == want.map(\.token), "\(pattern)")
            for (got, w) in zip(rest.scores, want) {
                #expect(abs(got.logprob - w.logprob) < 1e-4 && got.top.count == 3, "\(pattern): \(got.logprob) against \(w.logprob)")
            }
            #expect(zip(rest.last, whole.last).allSatisfy { abs($0 - $1) < 1e-4 })
        }
    }

    @Test func maxTokensStopTextsAndCancellation() throws {
        let engine = ChatEngine(model: try model(), tokenizer: tokenizer, slots: 2)
        engine.start()
        defer { engine.stop() }
        let free = run(engine, [request("Hello", maxTokens: 40, seed: 1)])[0]
        #expect(free.1 == .length || free.1 == .stop)
        if free.1 == .length { #expect(free.2 == 40) }
        // A stop text from the middle of that reply ends it just before, with reason stop.
        let chars = Array(free.0)
        try #require(chars.count >= 6, "the reply \(free.0.debugDescription) is too short to cut")
        let cut = chars.count / 2
        let stop = String(chars[cut..<(cut + 3)])
        let stopped = run(engine, [request("Hello", maxTokens: 40, seed: 1, stop: ["\u{1}never", stop])])[0]
        let expected = free.0.components(separatedBy: stop)[0]
        #expect(stopped.0 == expected && stopped.1 == .stop, "stop \(stop.debugDescription): \(stopped.0.debugDescription)")
        // A stop text the reply's last character begins, never completed: that character, held
        // back in case the stop text follows, is sent when the reply ends.
        let unfinished = String(chars[chars.count - 1]) + "\u{1}"
        let held = run(engine, [request("Hello", maxTokens: 40, seed: 1, stop: [unfinished])])[0]
        #expect(held.0 == free.0 && held.1 == free.1 && held.2 == free.2, "stop \(unfinished.debugDescription): \(held.0.debugDescription)")
        // Every two-character stop text, wherever it falls against the tokens' pieces (its
        // first character ending one piece, or inside one), ends the reply just before it:
        // nothing of it is sent first, and a step whose text is all held back sends no event.
        for at in 1..<min(chars.count, 30) {
            let pair = String(chars[(at - 1)...at])
            let c = Collector()
            _ = engine.submit(request("Hello", maxTokens: 40, seed: 1, stop: [pair])) { c.take($0) }
            let got = c.wait()
            #expect(got.0 == free.0.components(separatedBy: pair)[0] && got.1 == .stop, "stop \(pair.debugDescription): \(got.0.debugDescription)")
            #expect(c.lock.withLock { c.emptyTexts } == 0, "stop \(pair.debugDescription): empty text events")
        }

        // Cancelled mid-way: it finishes as cancelled and frees its slot; five requests on
        // two slots all finish.
        let c = Collector()
        let handle = engine.submit(request("Hello", maxTokens: 100_000, seed: 2)) { c.take($0) }
        usleep(50_000)
        handle.cancel()
        #expect(c.wait().1 == .cancelled)
        let five = run(engine, (0..<5).map { request("Hi \($0)", maxTokens: 8, seed: UInt64($0)) })
        #expect(five.allSatisfy { $0.1 == .length || $0.1 == .stop })
        var running = engine.status.running
        for _ in 0..<100 where running > 0 { usleep(10_000); running = engine.status.running }
        #expect(running == 0)
    }

    /// A request cancelled while it waits finishes as cancelled without running, and the one
    /// after it runs; stopping the engine finishes every request it holds as cancelled, and
    /// refuses one submitted after it the same way.
    @Test func stoppingOrCancellingBeforeAStartFinishesAsCancelled() throws {
        let engine = ChatEngine(model: try model(), tokenizer: tokenizer, slots: 1)
        let (waiting, next) = (Collector(), Collector())
        let handle = engine.submit(request("Hello", maxTokens: 5, seed: 1)) { waiting.take($0) }
        _ = engine.submit(request("Hello", maxTokens: 2, seed: 1)) { next.take($0) }
        handle.cancel()
        engine.start()
        let never = waiting.wait()   // each collector is waited for once: its finish signals once
        #expect(never.1 == .cancelled && never.0 == "" && never.2 == 0)
        let ran = next.wait()
        #expect((ran.1 == .length && ran.2 == 2) || (ran.1 == .stop && ran.2 >= 1), "\(ran)")
        engine.stop()

        let stopped = ChatEngine(model: try model(), tokenizer: tokenizer, slots: 1)
        let held = (0..<2).map { _ in Collector() }
        for c in held { _ = stopped.submit(request("Hello", maxTokens: 5, seed: 1)) { c.take($0) } }
        stopped.stop()
        let late = Collector()
        _ = stopped.submit(request("Hello", maxTokens: 5, seed: 1)) { late.take($0) }
        #expect(late.wait().1 == .cancelled, "submitted after stop")
        stopped.start()
        for c in held {
            let got = c.wait()
            #expect(got.1 == .cancelled && got.2 == 0)
        }
    }

    /// `generate` gives exactly maxNewTokens ids (none for 0, one for 1), each the sampler's
    /// draw from the full forward's logits at its position, stops when told to, and hands
    /// back the sampler as it stands after the last draw.
    @Test func generateMakesExactlyTheTokensAskedForAndStopsWhenTold() throws {
        let m = try model([.transformer, .mamba])
        let prompt = [tokenizer.bosID] + tokenizer.encode("The cat")
        func run(_ n: Int, seed: UInt64, stopAfter: Int = .max) -> (ids: [Int32], sampler: Sampler) {
            var sampler = Sampler(temperature: 1, topK: 0, seed: seed)
            var ids: [Int32] = []
            Generator.generate(m, prompt: prompt, maxNewTokens: n, sampler: &sampler) { id in
                ids.append(id)
                return ids.count < stopAfter
            }
            return (ids, sampler)
        }
        #expect(run(0, seed: 1).ids.isEmpty)
        let five = run(5, seed: 1)
        #expect(five.ids.count == 5)
        for n in [1, 2, 4] { #expect(run(n, seed: 1).ids == Array(five.ids.prefix(n)), "\(n) tokens") }
        #expect(run(5, seed: 1, stopAfter: 2).ids == Array(five.ids.prefix(2)))
        // Each draw is the sampler's pick from the full forward's last row.
        var sampler = Sampler(temperature: 1, topK: 0, seed: 1)
        var ids = prompt
        for _ in 0..<5 {
            let logits = GradMode.withoutGradients { m.logits(IndexTensor(shape: [1, ids.count], values: ids)).doubles }
            let v = m.config.vocabSize
            ids.append(Int32(sampler.pick(Array(logits.suffix(v)))))
        }
        #expect(Array(ids.dropFirst(prompt.count)) == five.ids)
        // The sampler handed back continues where the five draws left it.
        var handed = five.sampler, fresh = Sampler(temperature: 1, topK: 0, seed: 1)
        let flat = [Double](repeating: 0, count: 1000)
        let next = (0..<4).map { _ in sampler.pick(flat) }
        #expect((0..<4).map { _ in handed.pick(flat) } == next)
        #expect((0..<4).map { _ in fresh.pick(flat) } != next, "a sampler that had not drawn would differ")
    }

    @Test func topPKeepsTheSmallestSetReachingIt() {
        // Probabilities ∝ e^logit: 0.6, 0.3, 0.1 (temperature 1). top_p 0.5 keeps only the
        // first; 0.8 keeps two; the third never appears.
        let logits = [log(0.6), log(0.3), log(0.1)]
        var one = Sampler(temperature: 1, topK: 0, topP: 0.5, seed: 1)
        #expect((0..<200).allSatisfy { _ in one.pick(logits) == 0 })
        var two = Sampler(temperature: 1, topK: 0, topP: 0.8, seed: 1)
        let picks = (0..<400).map { _ in two.pick(logits) }
        #expect(!picks.contains(2) && picks.contains(1) && picks.contains(0))
        // A share that reaches top_p exactly is enough: four equal logits (weights exactly 1,
        // ties in index order) at top_p 0.5 keep the first two, never the third.
        var half = Sampler(temperature: 1, topK: 0, topP: 0.5, seed: 3)
        let even = (0..<400).map { _ in half.pick([0.5, 0.5, 0.5, 0.5]) }
        #expect(Set(even) == [0, 1], "top_p 0.5 of four equal tokens picked \(Set(even).sorted())")
    }

    /// Temperature divides the logits: at 0.5 a 2:1 pair of probabilities becomes 4:1 (a share
    /// of 0.8), at 2 it becomes √2:1 (0.586); at 1 it stays 2:1.
    @Test func temperatureDividesTheLogits() {
        let logits = [log(2.0), 0]
        for (temperature, share) in [(0.5, 0.8), (1, 2.0 / 3), (2, 2.0.squareRoot() / (1 + 2.0.squareRoot()))] {
            var s = Sampler(temperature: temperature, topK: 0, seed: 5)
            let n = 4000
            let first = Double((0..<n).filter { _ in s.pick(logits) == 0 }.count) / Double(n)
            #expect(abs(first - share) < 0.03, "temperature \(temperature): share \(first), not about \(share)")
        }
    }

    @Test func topKKeepsExactlyTheKMostLikely() {
        // Probabilities ∝ e^logit: 0.4, 0.3, 0.2, 0.1. top_k 2 draws the first two alone, in
        // about their renormalised shares (4:3); top_k 3 lets the third in, never the fourth.
        let logits = [log(0.4), log(0.3), log(0.2), log(0.1)]
        var two = Sampler(temperature: 1, topK: 2, seed: 2)
        let picks = (0..<700).map { _ in two.pick(logits) }
        #expect(Set(picks) == [0, 1], "top_k 2 drew \(Set(picks).sorted())")
        let share = Double(picks.filter { $0 == 0 }.count) / Double(picks.count)
        #expect(abs(share - 4.0 / 7) < 0.06, "the first token's share \(share), not about 4/7")
        var three = Sampler(temperature: 1, topK: 3, seed: 2)
        #expect(Set((0..<700).map { _ in three.pick(logits) }) == [0, 1, 2])
    }

    /// A top_k that excludes nothing (the vocabulary's size or more) is no top_k: the same
    /// seed draws the same tokens as top_k 0, draw for draw.
    @Test func topKOfTheWholeVocabularyIsNoTopK() {
        let logits = [0.3, 1.2, -0.5, 0.9, 0.0]
        for k in [5, 6, 1000] {
            var all = Sampler(temperature: 0.8, topK: 0, seed: 11), whole = Sampler(temperature: 0.8, topK: k, seed: 11)
            let a = (0..<300).map { _ in all.pick(logits) }, b = (0..<300).map { _ in whole.pick(logits) }
            #expect(a == b, "top_k \(k) of 5 tokens drew other tokens than top_k 0")
            #expect(Set(a).count == 5)
        }
    }

    /// Greedy decoding takes the first of equal largest logits, as torch.argmax does (nanochat's
    /// temperature 0), wherever the tie sits.
    @Test func greedyTakesTheFirstOfEqualLogits() {
        var greedy = Sampler(temperature: 0, topK: 0, seed: 1)
        #expect(greedy.pick([1, 3, 3, 0]) == 1)
        #expect(greedy.pick([5, 5, 5]) == 0)
        #expect(greedy.pick([0, -1, 2, 2]) == 2)
        var greedyTopK = Sampler(temperature: 0, topK: 2, seed: 1)
        #expect(greedyTopK.pick([2, 7, 1, 7]) == 1)
    }
}

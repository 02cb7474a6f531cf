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
    /// any difference between two logits.
    func model(_ pattern: [BlockKind] = [.transformer, .mamba]) throws -> GPT {
        try GPT(config: ModelConfig(sequenceLen: 128, vocabSize: tokenizer.vocabSize, nLayer: pattern.count, nHead: 2, nKVHead: 2,
                                    nEmbd: 32, blockPattern: pattern), seed: 11, dtype: .float64)
    }

    /// Events of one request, collected.
    final class Collector: @unchecked Sendable {
        let lock = NSLock()
        var text = ""
        var finish: (FinishReason, Int, Int)?
        let done = DispatchSemaphore(value: 0)
        func take(_ e: GenerationEvent) {
            lock.withLock {
                switch e {
                case .text(let t): text += t
                case .finished(let r, let p, let c): finish = (r, p, c)
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

    @Test func topPKeepsTheSmallestSetReachingIt() {
        // Probabilities ∝ e^logit: 0.6, 0.3, 0.1 (temperature 1). top_p 0.5 keeps only the
        // first; 0.8 keeps two; the third never appears.
        let logits = [log(0.6), log(0.3), log(0.1)]
        var one = Sampler(temperature: 1, topK: 0, topP: 0.5, seed: 1)
        #expect((0..<200).allSatisfy { _ in one.pick(logits) == 0 })
        var two = Sampler(temperature: 1, topK: 0, topP: 0.8, seed: 1)
        let picks = (0..<400).map { _ in two.pick(logits) }
        #expect(!picks.contains(2) && picks.contains(1) && picks.contains(0))
    }
}

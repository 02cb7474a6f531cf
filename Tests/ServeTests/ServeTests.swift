// The serving engine and the OpenAI API bodies: requests decoded together give what each
// gives alone; stop texts, max_tokens, cancellation and slots behave; bad request bodies are
// refused with OpenAI's error naming the field.
import Foundation
import Blocks
import Tensor
import Testing
@testable import Serve
import Tokenizer
import Inference

@Suite struct ServeTests {
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

    /// A chat request's prompt is the conversation rendered and primed for the reply (the
    /// system message folded in); the reply shows no special tokens.
    @Test func aChatRequestIsTheRenderedConversation() throws {
        let engine = ChatEngine(model: try model(), tokenizer: tokenizer, slots: 2)
        engine.start()
        defer { engine.stop() }
        let limits = APILimits(context: 128, maxTokens: 16)
        let api = try OpenAIAPI.parse(Data(#"{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}],"max_tokens":16}"#.utf8),
                                      chat: true, tokenizer: tokenizer, limits: limits, seed: 1)
        let conversation = Conversation([.init(.system, "Be brief."), .init(.user, "Hi")])
        #expect(api.generation.prompt == (try tokenizer.renderForReply(conversation)))
        let out = run(engine, [api.generation])[0]
        #expect(out.2 >= 1 && out.2 <= 16)
        #expect(!out.0.contains("<|"))
    }

    func refusal(_ body: String, chat: Bool = true, limits: APILimits = APILimits(context: 64, maxTokens: 32)) -> APIError? {
        do {
            _ = try OpenAIAPI.parse(Data(body.utf8), chat: chat, tokenizer: tokenizer, limits: limits, seed: 0)
            return nil
        } catch let e as APIError {
            return e
        } catch {
            return APIError("unexpected \(error)")
        }
    }

    @Test func badRequestsAreRefusedNamingTheField() throws {
        let user = #"[{"role":"user","content":"Hi"}]"#
        let cases: [(String, Bool, String?, String)] = [
            ("{\"messages\": ", true, nil, "not valid JSON"),
            ("[1, 2]", true, nil, "JSON object"),
            (#"{"messages": [{"role":"user","content":5}]}"#, true, "messages[0].content", "wrong type"),
            (#"{"messages": "hi"}"#, true, "messages", "wrong type"),
            (#"{"messages": \#(user), "max_tokens": "ten"}"#, true, "max_tokens", "wrong type"),
            (#"{"messages": \#(user), "max_tokens": 1.5}"#, true, "max_tokens", "expected an integer"),
            (#"{"messages": \#(user), "temperature": true}"#, true, "temperature", "wrong type"),
            (#"{"messages": \#(user), "stream": "yes"}"#, true, "stream", "wrong type"),
            (#"{"messages": \#(user), "max_tokens": 0}"#, true, "max_tokens", "1...32"),
            (#"{"messages": \#(user), "max_tokens": 33}"#, true, "max_tokens", "1...32"),
            (#"{"messages": \#(user), "temperature": 3}"#, true, "temperature", "0...2"),
            (#"{"messages": \#(user), "top_p": 0}"#, true, "top_p", "(0, 1]"),
            (#"{"messages": \#(user), "n": 2}"#, true, "n", "n = 1"),
            (#"{"messages": \#(user), "stop": ["a","b","c","d","e"]}"#, true, "stop", "at most 4"),
            (#"{"messages": []}"#, true, "messages", "1 to"),
            (#"{}"#, true, "messages", "required"),
            (#"{"messages": [{"role":"robot","content":"x"}]}"#, true, "messages[0].role", "system, user or assistant"),
            (#"{"messages": [{"role":"assistant","content":"x"}]}"#, true, "messages", "last message"),
            (#"{"messages": [{"role":"user","content":"\#(String(repeating: "word ", count: 200))"}]}"#, true, "messages", "context"),
            (#"{"prompt": 7}"#, false, "prompt", "wrong type"),
            (#"{"prompt": ["a", "b"]}"#, false, "prompt", "one text"),
            (#"{"prompt": "hi", "max_tokens": 30, "stop": "x"}"#, false, nil, ""),
        ]
        for (body, chat, param, words) in cases {
            let e = refusal(body, chat: chat)
            if words.isEmpty && param == nil {
                #expect(e == nil, "\(body): refused: \(e?.message ?? "")")
                continue
            }
            guard let e else { Issue.record("\(body) was accepted"); continue }
            #expect(e.status == 400 && e.type == "invalid_request_error")
            #expect(e.param == param, "\(body): param \(e.param ?? "nil"), wanted \(param ?? "nil")")
            #expect(words.isEmpty || e.message.contains(words), "\(body): \(e.message)")
            let object = try JSONSerialization.jsonObject(with: e.body) as? [String: [String: Any]]
            #expect(object?["error"]?["message"] as? String == e.message)
        }
        // More messages than allowed.
        let many = refusal(#"{"messages": [{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":"c"}]}"#,
                           limits: APILimits(context: 64, maxTokens: 32, maxMessages: 2))
        #expect(many?.param == "messages" && many?.message.contains("1 to 2 messages, got 3") == true)
        // The context: prompt plus max_tokens; an oversize body; a long prompt's code.
        let long = refusal(#"{"prompt": "\#(String(repeating: "word ", count: 30))", "max_tokens": 32}"#, chat: false)
        #expect(long?.code == "context_length_exceeded" && long?.param == "max_tokens")
        let huge = refusal(#"{"prompt": "\#(String(repeating: "x", count: 5000))"}"#, chat: false,
                           limits: APILimits(context: 64, maxTokens: 32, maxBodyBytes: 4096))
        #expect(huge?.status == 413)
        let tooLong = refusal(#"{"prompt": "\#(String(repeating: "word ", count: 100))"}"#, chat: false)
        #expect(tooLong?.code == "context_length_exceeded" && tooLong?.param == "prompt")
    }

    @Test func repliesAndChunksHaveOpenAIsShape() throws {
        let head = OpenAIAPI.ReplyHead(id: "chatcmpl-1", created: 5, model: "m", chat: true)
        let whole = try JSONSerialization.jsonObject(with: OpenAIAPI.reply(head, text: "hi", finish: .length,
                                                                            usage: .init(prompt: 3, completion: 2))) as? [String: Any]
        let choice = (whole?["choices"] as? [[String: Any]])?.first
        #expect(whole?["object"] as? String == "chat.completion")
        #expect((choice?["message"] as? [String: Any])?["content"] as? String == "hi")
        #expect(choice?["finish_reason"] as? String == "length")
        #expect((whole?["usage"] as? [String: Any])?["total_tokens"] as? Int == 5)
        let event = String(decoding: OpenAIAPI.chunk(head, text: "a", first: true), as: UTF8.self)
        #expect(event.hasPrefix("data: {") && event.hasSuffix("}\n\n"))
        let chunk = try JSONSerialization.jsonObject(with: Data(event.dropFirst(6).utf8)) as? [String: Any]
        let delta = ((chunk?["choices"] as? [[String: Any]])?.first?["delta"]) as? [String: Any]
        #expect(chunk?["object"] as? String == "chat.completion.chunk" && delta?["role"] as? String == "assistant"
                && delta?["content"] as? String == "a")
        let text = OpenAIAPI.ReplyHead(id: "cmpl-1", created: 5, model: "m", chat: false)
        let t = try JSONSerialization.jsonObject(with: Data(String(decoding: OpenAIAPI.chunk(text, text: "b"), as: UTF8.self).dropFirst(6).utf8)) as? [String: Any]
        #expect(t?["object"] as? String == "text_completion" && ((t?["choices"] as? [[String: Any]])?.first?["text"]) as? String == "b")
    }

    /// Chunks are written by hand: every kind of text comes back from a JSON parser as it
    /// went in, and the chunk holds what JSONSerialization would write.
    @Test func chunksAreValidJSONForAnyText() throws {
        let texts = ["plain", "quote \" and \\ backslash", "new\nline\ttab\r", "\u{1}\u{1f}\u{7f}", "é 漢字 🙂", ""]
        for chat in [true, false] {
            let head = OpenAIAPI.ReplyHead(id: "id-\"1", created: 7, model: "m\\x", chat: chat)
            for text in texts {
                for (first, finish) in [(true, nil), (false, nil), (false, FinishReason.stop), (false, .length)] as [(Bool, FinishReason?)] {
                    let event = OpenAIAPI.chunk(head, text: text, first: first, finish: finish)
                    let object = try #require(try JSONSerialization.jsonObject(with: Data(event.dropFirst(6))) as? [String: Any])
                    let choice = try #require((object["choices"] as? [[String: Any]])?.first)
                    let got = chat ? (choice["delta"] as? [String: Any])?["content"] as? String : choice["text"] as? String
                    #expect(got == text, "\(text.debugDescription)")
                    #expect(object["id"] as? String == "id-\"1" && object["model"] as? String == "m\\x" && object["created"] as? Int == 7)
                    #expect((choice["finish_reason"] as? String) == finish.map { $0 == .stop ? "stop" : "length" })
                    #expect(!chat || ((choice["delta"] as? [String: Any])?["role"] as? String == "assistant") == first)
                }
            }
            let last = OpenAIAPI.chunk(head, text: nil, usage: .init(prompt: 2, completion: 3))
            let object = try #require(try JSONSerialization.jsonObject(with: Data(last.dropFirst(6))) as? [String: Any])
            #expect((object["choices"] as? [Any])?.isEmpty == true && (object["usage"] as? [String: Any])?["total_tokens"] as? Int == 5)
        }
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

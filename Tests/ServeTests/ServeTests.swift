// The OpenAI API over HTTP: request bodies refused with OpenAI's error naming the field,
// replies and chunks in OpenAI's shape, and the routes answered through Hummingbird's test
// client (the page, health, models, completions whole and streamed, errors, sizes).
import Foundation
import Blocks
import Tensor
import Testing
import Hummingbird
import HummingbirdTesting
import Serve
import Tokenizer
import Inference

@Suite struct ServeTests {
    let tokenizer: Tokenizer

    init() throws {
        tokenizer = try Tokenizer.load(from: tokenizerFixtures + "/tokenizer")
    }

    /// The API over `engine` as these tests serve it: model "test-1", seed 7, 4 requests
    /// waiting, a 128-token context, replies of at most 16 tokens, 8 messages.
    func app(_ engine: ChatEngine, maxBodyBytes: Int = 2048, access: AccessPolicy = AccessPolicy()) -> some ApplicationProtocol {
        let server = APIServer(engine: engine, model: "test-1", seed: 7, maxWaiting: 4,
                               limits: APILimits(context: 128, maxTokens: 16, maxMessages: 8, maxBodyBytes: maxBodyBytes), access: access)
        return Application(router: server.router())
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
                case .prompt, .token: break
                }
            }
            if case .finished = e { done.signal() }
        }
        func wait() -> (String, FinishReason?, Int) {
            _ = done.wait(timeout: .now() + 120)
            return lock.withLock { (text, finish?.0, finish?.2 ?? -1) }
        }
    }

    func run(_ engine: ChatEngine, _ requests: [GenerationRequest]) -> [(String, FinishReason?, Int)] {
        let collectors = requests.map { _ in Collector() }
        for (r, c) in zip(requests, collectors) { _ = engine.submit(r) { c.take($0) } }
        return collectors.map { $0.wait() }
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

    /// A request body read as the server reads it (the tests' limits: context 64, max_tokens 32).
    func parsed(_ body: String, chat: Bool = true, limits: APILimits = APILimits(context: 64, maxTokens: 32),
                seed: UInt64 = 0) throws -> APIRequest {
        try OpenAIAPI.parse(Data(body.utf8), chat: chat, tokenizer: tokenizer, limits: limits, seed: seed)
    }

    func refusal(_ body: String, chat: Bool = true, limits: APILimits = APILimits(context: 64, maxTokens: 32)) -> APIError? {
        do {
            _ = try parsed(body, chat: chat, limits: limits)
            return nil
        } catch let e as APIError {
            return e
        } catch {
            return APIError("unexpected \(error)")
        }
    }

    /// OpenAI fields the server does not implement are refused, naming the field, unless
    /// sent off (what clients send by default must still work).
    @Test func unimplementedFieldsAreRefusedUnlessOff() throws {
        let user = #"[{"role":"user","content":"Hi"}]"#
        let refused: [(String, String, String)] = [
            ("tools", #"[{"type":"function"}]"#, "null or []"), ("functions", #"[{"name":"f"}]"#, "null or []"),
            ("tool_choice", #""auto""#, #"null or "none""#), ("function_call", #""auto""#, #"null or "none""#),
            ("response_format", #"{"type":"json_object"}"#, #"null or {"type": "text"}"#), ("suffix", #""end""#, #"null or """#),
            ("best_of", "3", "null or 1"), ("best_of", "true", "null or 1"), ("modalities", #"["text","audio"]"#, #"null or ["text"]"#),
            ("audio", "{}", "null"), ("prediction", #"{"type":"content"}"#, "null"),
        ]
        for (field, value, off) in refused {
            let error = refusal(#"{"messages": \#(user), "\#(field)": \#(value)}"#)
            #expect(error?.param == field && error?.status == 400
                    && error?.message == "\(field) is not supported by this server; leave it out or send \(off)",
                    "\(field): \(value) gave \(String(describing: error))")
        }
        let accepted: [(String, String)] = [
            ("logprobs", "false"), ("logprobs", "null"), ("top_logprobs", "0"), ("echo", "false"), ("logit_bias", "{}"),
            ("presence_penalty", "0"), ("frequency_penalty", "0.0"), ("tools", "[]"), ("tool_choice", #""none""#),
            ("response_format", #"{"type":"text"}"#), ("best_of", "1"), ("modalities", #"["text"]"#), ("user", #""u1""#),
            ("functions", "null"), ("function_call", #""none""#), ("suffix", #""""#), ("audio", "null"), ("prediction", "null"),
            ("best_of", "1.0"),
            // Implemented: log-probabilities, a logit bias, the penalties.
            ("logprobs", "true"), ("logit_bias", #"{"50": 100, "7": -100}"#), ("presence_penalty", "0.5"), ("frequency_penalty", "-1"),
        ]
        for (field, value) in accepted {
            let error = refusal(#"{"messages": \#(user), "\#(field)": \#(value)}"#)
            #expect(error == nil, "\(field): \(value) refused: \(String(describing: error))")
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
            (#"{"messages": [{"role":"user","content":null}]}"#, true, "messages[0].content", "missing or null"),
            (#"{"messages": [{"role":"user"}]}"#, true, "messages[0].content", "missing or null"),
            (#"{"messages": [{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}"#, true,
             "messages[0].content[0]", "of type \"image_url\"; this model reads text parts only"),
            (#"{"messages": [{"role":"user","content":[{"type":"text","text":"a"},{"type":"input_audio"}]}]}"#, true,
             "messages[0].content[1]", "input_audio"),
            (#"{"messages": [{"role":"user","content":[{"type":"text"}]}]}"#, true, "messages[0].content[0].text", "required"),
            (#"{"messages": [{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]}"#, true, nil, ""),
            (#"{"prompt": 7}"#, false, "prompt", "wrong type"),
            (#"{"prompt": ["a", "b"]}"#, false, nil, ""),
            (#"{"prompt": [[5, 6], [7]], "max_tokens": 2}"#, false, nil, ""),
            (#"{"prompt": []}"#, false, "prompt", "1 to 64 prompts, got 0"),
            (#"{"prompt": [[5], []]}"#, false, "prompt[1]", "empty list of token ids"),
            (#"{"prompt": [5, 999999]}"#, false, "prompt", "prompt[1] = 999999 is not a token id"),
            (#"{"prompt": [5, -1]}"#, false, "prompt", "not a token id"),
            (#"{"prompt": [1.5]}"#, false, "prompt", "wrong type"),
            (#"{"prompt": "a", "logprobs": 21}"#, false, "logprobs", "0...20"),
            (#"{"prompt": "a", "logprobs": true}"#, false, "logprobs", "expected an integer"),
            (#"{"prompt": "a", "logprobs": "x"}"#, false, "logprobs", "wrong type"),
            (#"{"prompt": "a", "top_logprobs": 2}"#, false, "top_logprobs", "a field of /v1/chat/completions"),
            (#"{"prompt": "a", "max_tokens": 0}"#, false, "max_tokens", "only scores the prompt"),
            (#"{"prompt": "a", "max_tokens": 0, "echo": true, "logprobs": 1}"#, false, nil, ""),
            (#"{"prompt": "a", "max_tokens": -1}"#, false, "max_tokens", "got -1"),
            (#"{"messages": \#(user), "logprobs": 2}"#, true, "logprobs", "expected true or false"),
            (#"{"messages": \#(user), "top_logprobs": 2}"#, true, "top_logprobs", "needs logprobs: true"),
            (#"{"messages": \#(user), "logprobs": true, "top_logprobs": 21}"#, true, "top_logprobs", "0...20"),
            (#"{"messages": \#(user), "logprobs": true, "top_logprobs": 20}"#, true, nil, ""),
            (#"{"messages": \#(user), "echo": true}"#, true, "echo", "a field of /v1/completions"),
            (#"{"messages": \#(user), "logit_bias": {"x": 1}}"#, true, "logit_bias", "\"x\" is not a token id"),
            (#"{"messages": \#(user), "logit_bias": {"70000": 1}}"#, true, "logit_bias", "not a token id"),
            (#"{"messages": \#(user), "logit_bias": {"5": 101}}"#, true, "logit_bias", "-100...100"),
            (#"{"messages": \#(user), "logit_bias": [5]}"#, true, "logit_bias", "wrong type"),
            (#"{"messages": \#(user), "presence_penalty": 2.5}"#, true, "presence_penalty", "-2...2"),
            (#"{"messages": \#(user), "frequency_penalty": -3}"#, true, "frequency_penalty", "-2...2"),
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
        // The limit itself is allowed (a small request padded with JSON's spaces), a byte more is not.
        let small = #"{"prompt": "hi", "max_tokens": 1}"#, edge = APILimits(context: 64, maxTokens: 32, maxBodyBytes: 1024)
        func padded(_ bytes: Int) -> String { small + String(repeating: " ", count: bytes - small.utf8.count) }
        #expect(refusal(padded(1024), chat: false, limits: edge) == nil)
        let over = refusal(padded(1025), chat: false, limits: edge)
        #expect(over?.status == 413 && over?.message.contains("1025 bytes, more than the 1024 allowed") == true, "\(String(describing: over))")
        let tooLong = refusal(#"{"prompt": "\#(String(repeating: "word ", count: 100))"}"#, chat: false)
        #expect(tooLong?.code == "context_length_exceeded" && tooLong?.param == "prompt")
    }

    /// The defaults docs/chat.md gives the server's limits (a number in brackets just after
    /// the flag, "(30)", "(1 MiB; 413)") are the ones `nanochat serve` takes: each flag's
    /// default stated at least once, and no other number in that place.
    @Test func theLimitsDefaultsAreTheOnesTheDocsGive() throws {
        let docs = try String(contentsOfFile: URL(fileURLWithPath: tokenizerFixtures).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("docs/chat.md").path, encoding: .utf8)
        let defaults: [(flag: String, value: Double)] = [
            ("max-messages", Double(APILimits.defaultMaxMessages)), ("max-body-bytes", Double(APILimits.defaultMaxBodyBytes)),
            ("client-timeout", AccessPolicy.defaultClientTimeout), ("max-connections", Double(AccessPolicy.defaultMaxConnections)),
        ]
        for (flag, value) in defaults {
            // "`--flag`", a few words without brackets or code, then "(N" or "(N MiB".
            let pattern = try Regex("`--\(flag)`[^(`]{0,20}\\(([0-9]+)( MiB)?")
            let stated = docs.matches(of: pattern).compactMap { m -> Double? in
                guard let n = m.output[1].substring.flatMap({ Double($0) }) else { return nil }
                return m.output[2].substring == nil ? n : n * Double(1 << 20)
            }
            #expect(!stated.isEmpty && stated.allSatisfy { $0 == value }, "--\(flag): docs/chat.md says \(stated), the server takes \(value)")
        }
    }

    /// A request without max_tokens gets the server's largest, or what the context leaves
    /// after its prompt when that is less; each prompt of a completions request its own.
    @Test func maxTokensDefaultsToWhatTheContextLeaves() throws {
        let short = try parsed(#"{"prompt": "Hi"}"#, chat: false).generations
        #expect(short.map(\.maxTokens) == [32])
        var words = "word"
        while tokenizer.encode(words).count < 40 { words += " word" }
        let prompts = [[tokenizer.bosID] + tokenizer.encode("Hi"), [tokenizer.bosID] + tokenizer.encode(words)]
        #expect(prompts[1].count > 32 && prompts[1].count < 64)
        let both = try parsed(#"{"prompt": ["Hi", "\#(words)"]}"#, chat: false).generations
        #expect(both.map(\.prompt) == prompts)
        #expect(both.map(\.maxTokens) == [32, 64 - prompts[1].count])
        let chat = try parsed(#"{"messages": [{"role": "user", "content": "\#(words)"}]}"#).generations
        #expect(chat.map(\.maxTokens) == [64 - (chat.first?.prompt.count ?? 0)] && (chat.first?.prompt.count ?? 0) > 32)
        // A prompt and max_tokens that fill the context exactly are served; one token more is refused.
        let fill = 64 - prompts[1].count
        let exact = try parsed(#"{"prompt": "\#(words)", "max_tokens": \#(fill)}"#, chat: false).generations
        #expect(exact.map(\.maxTokens) == [fill])
        let over = refusal(#"{"prompt": "\#(words)", "max_tokens": \#(fill + 1)}"#, chat: false)
        #expect(over?.code == "context_length_exceeded" && over?.param == "max_tokens")
        // Chat's max_completion_tokens past the context: the refusal names that field.
        let chatPrompt = chat.first?.prompt.count ?? 0
        let overChat = refusal(#"{"messages": [{"role": "user", "content": "\#(words)"}], "max_completion_tokens": \#(64 - chatPrompt + 1)}"#)
        #expect(overChat?.code == "context_length_exceeded" && overChat?.param == "max_completion_tokens"
                && overChat?.message.contains("max_completion_tokens asks for \(64 - chatPrompt + 1) more") == true)
        // And max_tokens equal to the server's largest is served.
        #expect(try parsed(#"{"prompt": "Hi", "max_tokens": 32}"#, chat: false).generations.map(\.maxTokens) == [32])
    }

    /// Every numeric bound from both sides: the last value inside is accepted and reaches the
    /// generation as sent, the first value outside is refused naming the field. (A refusal
    /// test alone passes a bound moved inwards, such as a maximum temperature of 2 refused.)
    @Test func everyBoundAcceptsItsEdgeAndRefusesPastIt() throws {
        let user = #"[{"role":"user","content":"Hi"}]"#
        // (field, value inside, value outside, chat, what the generation holds for the inside value)
        let bounds: [(String, String, String, Bool, (GenerationRequest) -> Bool)] = [
            ("temperature", "2", "2.0001", true, { $0.sampler.temperature == 2 }),
            ("temperature", "0", "-0.0001", true, { $0.sampler.temperature == 0 }),
            ("top_p", "1", "1.0001", true, { $0.sampler.topP == 1 }),
            ("top_p", "0.0001", "0", true, { $0.sampler.topP == 0.0001 }),
            ("top_k", "0", "-1", true, { $0.sampler.topK == 0 }),
            ("max_tokens", "32", "33", true, { $0.maxTokens == 32 }),
            ("max_tokens", "1", "0", true, { $0.maxTokens == 1 }),
            ("max_completion_tokens", "32", "33", true, { $0.maxTokens == 32 }),
            ("presence_penalty", "2", "2.0001", true, { $0.presencePenalty == 2 }),
            ("presence_penalty", "-2", "-2.0001", true, { $0.presencePenalty == -2 }),
            ("frequency_penalty", "2", "2.0001", true, { $0.frequencyPenalty == 2 }),
            ("frequency_penalty", "-2", "-2.0001", true, { $0.frequencyPenalty == -2 }),
            ("logit_bias", #"{"5": 100}"#, #"{"5": 100.0001}"#, true, { $0.logitBias == [5: 100] }),
            ("logit_bias", #"{"5": -100}"#, #"{"5": -100.0001}"#, true, { $0.logitBias == [5: -100] }),
            ("logprobs", "20", "21", false, { $0.logprobs == 20 }),
            ("logprobs", "0", "-1", false, { $0.logprobs == 0 }),
            ("stop", #"["a","b","c","d"]"#, #"["a","b","c","d","e"]"#, true, { $0.stop == ["a", "b", "c", "d"] }),
        ]
        for (field, inside, outside, chat, holds) in bounds {
            let head = chat ? #"{"messages": \#(user)"# : #"{"prompt": "Hi""#
            do {
                let accepted = try parsed(head + #", "\#(field)": \#(inside)}"#, chat: chat).generations.first
                #expect(accepted.map(holds) == true, "\(field) = \(inside): \(String(describing: accepted))")
            } catch {
                Issue.record("\(field) = \(inside) refused: \(error)")
            }
            let refused = refusal(head + #", "\#(field)": \#(outside)}"#, chat: chat)
            #expect(refused?.param == field && refused?.message.contains(field) == true,
                    "\(field) = \(outside) was not refused naming it: \(String(describing: refused?.message))")
        }
        // Chat's top_logprobs (with logprobs: true): 20 kept, 21 refused.
        let top = try parsed(#"{"messages": \#(user), "logprobs": true, "top_logprobs": 20}"#).generations.first
        #expect(top?.logprobs == 20)
        #expect(refusal(#"{"messages": \#(user), "logprobs": true, "top_logprobs": 21}"#)?.param == "top_logprobs")
        // Counts: 64 prompts, and as many biased tokens as allowed, are accepted; one more is refused.
        let prompts = { (n: Int) in #"{"prompt": [\#((0..<n).map { _ in "[5]" }.joined(separator: ","))], "max_tokens": 1}"# }
        #expect(try parsed(prompts(64), chat: false).generations.count == 64)
        #expect(refusal(prompts(65), chat: false)?.param == "prompt")
        var limits = APILimits(context: 64, maxTokens: 32)
        limits.maxLogitBias = 8
        let biases = { (n: Int) in #"{"messages": \#(user), "logit_bias": {\#((0..<n).map { "\"\($0)\": 1" }.joined(separator: ","))}}"# }
        #expect(try parsed(biases(8), limits: limits).generations.first?.logitBias.count == 8)
        let tooMany = refusal(biases(9), limits: limits)
        #expect(tooMany?.param == "logit_bias" && tooMany?.message.contains("at most 8 tokens, got 9") == true)
    }

    /// Each prompt of a completions request draws from its own seed: the request's seed for
    /// the first, the next ones after it (the same prompt twice gives two different samples).
    @Test func eachPromptDrawsFromItsOwnSeed() throws {
        let request = try parsed(#"{"prompt": ["Hi", "Hi", "Hi"], "seed": 7, "temperature": 1, "max_tokens": 1}"#, chat: false)
        let flat = [Double](repeating: 0, count: 1000)
        func draws(_ sampler: Sampler) -> [Int] {
            var s = sampler
            return (0..<16).map { _ in s.pick(flat) }
        }
        #expect(request.generations.count == 3)
        for (i, g) in request.generations.enumerated() {
            #expect(draws(g.sampler) == draws(Sampler(temperature: 1, topK: 0, topP: 1, seed: 7 + UInt64(i))), "prompt \(i)")
        }
        #expect(draws(request.generations[0].sampler) != draws(request.generations[1].sampler))
        // Without a seed in the request, the server's seed is the first.
        let unseeded = try parsed(#"{"prompt": "Hi", "temperature": 1, "max_tokens": 1}"#, chat: false, seed: 42)
        #expect(draws(unseeded.generations[0].sampler) == draws(Sampler(temperature: 1, topK: 0, topP: 1, seed: 42)))
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

    /// The routes through Hummingbird's test client: the page, health, the model list, a
    /// completion whole and a chat reply streamed, a body that is not JSON, a body over the
    /// limit, a route that does not exist.
    @Test func routesAnswerAsOpenAIsAPI() async throws {
        let engine = ChatEngine(model: try model(), tokenizer: tokenizer, slots: 2)
        engine.start()
        defer { engine.stop() }
        let app = app(engine)
        try await app.test(.router) { client in
            try await client.execute(uri: "/", method: .get) { r in
                #expect(r.status == .ok && String(buffer: r.body).contains("<html"))
            }
            try await client.execute(uri: "/health", method: .get) { r in
                let body = try json(r.body)
                #expect(r.status == .ok && body["status"] as? String == "ok" && body["model"] as? String == "test-1")
                #expect(body["slots"] as? Int == 2 && body["context"] as? Int == 128)
                // Nothing asked yet: nothing running, waiting, stepped or generated.
                #expect(body["running"] as? Int == 0 && body["waiting"] as? Int == 0 && body["steps"] as? Int == 0
                        && body["generated_tokens"] as? Int == 0, "\(body)")
            }
            try await client.execute(uri: "/v1/models", method: .get) { r in
                let data = try json(r.body)["data"] as? [[String: Any]]
                #expect(data?.first?["id"] as? String == "test-1")
            }
            let completion = #"{"prompt":"Hello","max_tokens":5,"temperature":0}"#
            try await client.execute(uri: "/v1/completions", method: .post, headers: [.contentType: "application/json"],
                                     body: ByteBuffer(string: completion)) { r in
                let body = try json(r.body)
                let choice = (body["choices"] as? [[String: Any]])?.first
                let usage = body["usage"] as? [String: Any]
                #expect(r.status == .ok && body["object"] as? String == "text_completion" && choice?["text"] is String)
                #expect((usage?["completion_tokens"] as? Int).map { (1...5).contains($0) } == true)
                // Requests are numbered in turn (their default seed takes one number, their id the next).
                #expect(body["id"] as? String == "cmpl-2")
            }
            let chat = #"{"messages":[{"role":"user","content":"Hi"}],"max_tokens":4,"stream":true}"#
            try await client.execute(uri: "/v1/chat/completions", method: .post, headers: [.contentType: "application/json"],
                                     body: ByteBuffer(string: chat)) { r in
                #expect(r.status == .ok && r.headers[.contentType] == "text/event-stream")
                for object in try streamChunks(r.body) {
                    #expect(object["object"] as? String == "chat.completion.chunk" && object["id"] as? String == "chatcmpl-4")
                }
            }
            // Each prompt of a request takes one of the 2 slots + 4 waiting places: 6 prompts in
            // one request are served, 7 are told the server is busy (nothing is running now).
            for count in [7, 6, 7] {
                let prompts = (0..<count).map { _ in #""Hi""# }.joined(separator: ",")
                try await client.execute(uri: "/v1/completions", method: .post,
                                         body: ByteBuffer(string: #"{"prompt":[\#(prompts)],"max_tokens":1}"#)) { r in
                    let body = try json(r.body)
                    if count <= 6 {
                        #expect(r.status == .ok && (body["choices"] as? [Any])?.count == count)
                    } else {
                        let error = body["error"] as? [String: Any]
                        #expect(r.status == .tooManyRequests && error?["type"] as? String == "rate_limit_error"
                                && (error?["message"] as? String)?.contains("6 requests running or waiting") == true)
                    }
                }
            }
            try await client.execute(uri: "/v1/chat/completions", method: .post, body: ByteBuffer(string: "{")) { r in
                let error = try json(r.body)["error"] as? [String: Any]
                #expect(r.status == .badRequest && error?["message"] is String && error?["type"] as? String == "invalid_request_error")
            }
            try await client.execute(uri: "/v1/completions", method: .post,
                                     body: ByteBuffer(string: #"{"prompt":""# + String(repeating: "x", count: 3000) + #""}"#)) { r in
                #expect(r.status == .contentTooLarge)
            }
            try await client.execute(uri: "/v1/nothing", method: .get) { r in #expect(r.status == .notFound) }
        }
    }

    /// A request without a seed draws from the server's seed plus its number: the first
    /// request of a server started with seed 7 samples as one asking for seed 8.
    @Test func anUnseededRequestDrawsFromTheServersSeedAndItsNumber() async throws {
        let engine = ChatEngine(model: try model(), tokenizer: tokenizer, slots: 2)
        engine.start()
        defer { engine.stop() }
        let texts = try await app(engine).test(.router) { client in
            var out: [String] = []
            for request in [#"{"prompt":"Hello","max_tokens":12,"temperature":1.5}"#,
                            #"{"prompt":"Hello","max_tokens":12,"temperature":1.5,"seed":8}"#,
                            #"{"prompt":"Hello","max_tokens":12,"temperature":1.5,"seed":9}"#] {
                out.append(try await client.execute(uri: "/v1/completions", method: .post, body: ByteBuffer(string: request)) { r in
                    let choice = (try json(r.body)["choices"] as? [[String: Any]])?.first
                    return choice?["text"] as? String ?? ""
                })
            }
            return out
        }
        #expect(texts[0] == texts[1] && !texts[0].isEmpty)
        #expect(texts[0] != texts[2], "another seed samples another reply")
    }

    /// A streamed reply is the whole reply in pieces: the same text (after the prompt, when it
    /// is echoed), and with stream_options.include_usage a last chunk of no choices carrying
    /// the token counts the whole reply gives; a chat stream opens with the assistant's role.
    @Test func streamsCarryTheWholeReply() async throws {
        let engine = ChatEngine(model: try model(), tokenizer: tokenizer, slots: 2)
        engine.start()
        defer { engine.stop() }
        let app = app(engine, maxBodyBytes: 4096)
        try await app.test(.router) { client in
            for chat in [false, true] {
                let uri = chat ? "/v1/chat/completions" : "/v1/completions"
                let input = chat ? #""messages":[{"role":"user","content":"Hi there"}]"# : #""prompt":"Hi there""#
                let common = #"\#(input),"max_tokens":6,"temperature":0,"ignore_eos":true"#
                let (whole, prompt, completion) = try await client.execute(uri: uri, method: .post, body: ByteBuffer(string: "{\(common)}")) { r in
                    let body = try json(r.body)
                    let choice = try #require((body["choices"] as? [[String: Any]])?.first)
                    let text = try #require(chat ? (choice["message"] as? [String: Any])?["content"] as? String : choice["text"] as? String)
                    let usage = try #require(body["usage"] as? [String: Any])
                    return (text, usage["prompt_tokens"] as? Int, usage["completion_tokens"] as? Int)
                }
                #expect(completion == 6)
                let echo = chat ? "" : #","echo":true"#
                let streamed = #"{\#(common)\#(echo),"stream":true,"stream_options":{"include_usage":true}}"#
                try await client.execute(uri: uri, method: .post, body: ByteBuffer(string: streamed)) { r in
                    let all = try streamChunks(r.body)
                    let last = try #require(all.last)
                    #expect((last["choices"] as? [Any])?.isEmpty == true)
                    let counts = try #require(last["usage"] as? [String: Any])
                    #expect(counts["completion_tokens"] as? Int == completion && counts["prompt_tokens"] as? Int == prompt)
                    var text = ""
                    for (i, chunk) in all.dropLast().enumerated() {
                        let choice = try #require((chunk["choices"] as? [[String: Any]])?.first)
                        let delta = choice["delta"] as? [String: Any]
                        if chat && i == 0 { #expect(delta?["role"] as? String == "assistant") }
                        text += (chat ? delta?["content"] as? String : choice["text"] as? String) ?? ""
                    }
                    #expect(text == (chat ? whole : "Hi there" + whole), "\(chat ? "chat" : "completion"): \(text.debugDescription)")
                }
            }
        }
    }

    /// Scoring through /v1/completions as evaluation harnesses do it: several prompts (text
    /// and token ids) in one request, echo with logprobs and max_tokens 0 or 1. Each choice
    /// echoes its prompt's tokens with their log-probabilities (the model's, given <|bos|>
    /// and the tokens before), in order, with the alternatives; streamed, the same numbers
    /// come in the chunks; chat's logprobs list the drawn tokens.
    @Test func completionsScorePromptsForEvaluationHarnesses() async throws {
        let m = try model()
        let engine = ChatEngine(model: m, tokenizer: tokenizer, slots: 2)
        engine.start()
        defer { engine.stop() }
        let app = app(engine, maxBodyBytes: 8192)
        let texts = ["The cat sat", "on the mat."]
        // What the model gives each token of a prompt, <|bos|> before it.
        func expected(_ text: String) -> [Double] {
            let ids = [tokenizer.bosID] + tokenizer.encode(text)
            return m.tokenLosses(IndexTensor(shape: [1, ids.count - 1], values: Array(ids.dropLast())),
                                 targets: IndexTensor(shape: [1, ids.count - 1], values: Array(ids.dropFirst()))).map { -Double($0) }
        }
        let scores = texts.map(expected)
        let asIDs = tokenizer.encode(texts[1]).map(String.init).joined(separator: ",")
        let body = #"{"prompt":["\#(texts[0])", "\#(texts[1])"],"max_tokens":0,"echo":true,"logprobs":2,"temperature":0}"#
        let ids = #"{"prompt":[[\#(asIDs)]],"max_tokens":1,"echo":true,"logprobs":1,"temperature":0}"#
        try await app.test(.router) { client in
            try await client.execute(uri: "/v1/completions", method: .post, body: ByteBuffer(string: body)) { r in
                let object = try json(r.body)
                let choices = try #require(object["choices"] as? [[String: Any]])
                #expect(r.status == .ok && choices.count == 2 && choices.map { $0["index"] as? Int } == [0, 1])
                for (choice, (text, want)) in zip(choices, zip(texts, scores)) {
                    let logprobs = try #require(choice["logprobs"] as? [String: Any])
                    let values = try #require(logprobs["token_logprobs"] as? [Double])
                    #expect(choice["text"] as? String == text && (logprobs["tokens"] as? [String])?.joined() == text)
                    #expect(values.count == want.count && zip(values, want).allSatisfy { abs($0 - $1) < 2e-7 * max(1, abs($1)) },
                            "\(values) against \(want)")
                    let tops = try #require(logprobs["top_logprobs"] as? [[String: Double]])
                    #expect(tops.count == want.count && tops.allSatisfy { (1...2).contains($0.count) })
                    #expect(zip(values, tops).allSatisfy { v, top in top.values.max().map { $0 >= v - 1e-12 } == true })
                    let offsets = try #require(logprobs["text_offset"] as? [Int])
                    #expect(offsets.first == 0 && offsets == offsets.sorted())
                }
                #expect((object["usage"] as? [String: Any])?["completion_tokens"] as? Int == 0)
            }
            // Token ids, without <|bos|>: the same scores, then one drawn token with its own.
            try await client.execute(uri: "/v1/completions", method: .post, body: ByteBuffer(string: ids)) { r in
                let choice = try #require((try json(r.body)["choices"] as? [[String: Any]])?.first)
                let logprobs = try #require(choice["logprobs"] as? [String: Any])
                let values = try #require(logprobs["token_logprobs"] as? [Double])
                let want = scores[1]
                #expect(values.count == want.count + 1 && zip(values, want).allSatisfy { abs($0 - $1) < 2e-7 * max(1, abs($1)) })
                let text = try #require(choice["text"] as? String)
                #expect(text.hasPrefix(texts[1]))
            }
            // Streamed: the echo's chunk carries its scores, each later chunk those of its tokens.
            let streamed = #"{"prompt":"\#(texts[0])","max_tokens":3,"echo":true,"logprobs":1,"temperature":0,"stream":true,"ignore_eos":true}"#
            try await client.execute(uri: "/v1/completions", method: .post, body: ByteBuffer(string: streamed)) { r in
                var values: [Double] = [], text = ""
                for object in try streamChunks(r.body) {
                    let choice = try #require((object["choices"] as? [[String: Any]])?.first)
                    text += choice["text"] as? String ?? ""
                    values += ((choice["logprobs"] as? [String: Any])?["token_logprobs"] as? [Double]) ?? []
                }
                let want = scores[0]
                #expect(text.hasPrefix(texts[0]) && values.count == want.count + 3)
                #expect(zip(values, want).allSatisfy { abs($0 - $1) < 2e-7 * max(1, abs($1)) })
            }
            let chat = #"{"messages":[{"role":"user","content":"Hi"}],"max_tokens":4,"logprobs":true,"top_logprobs":3}"#
            try await client.execute(uri: "/v1/chat/completions", method: .post, body: ByteBuffer(string: chat)) { r in
                let choice = try #require((try json(r.body)["choices"] as? [[String: Any]])?.first)
                let content = try #require((choice["logprobs"] as? [String: Any])?["content"] as? [[String: Any]])
                #expect((1...4).contains(content.count))
                for entry in content {
                    let top = try #require(entry["top_logprobs"] as? [[String: Any]])
                    #expect(entry["token"] is String && entry["bytes"] is [Int] && (entry["logprob"] as? Double).map { $0 <= 0 } == true)
                    #expect(top.count == 3 && top.compactMap { $0["logprob"] as? Double } == top.compactMap { $0["logprob"] as? Double }.sorted(by: >))
                }
            }
        }
    }

    /// Token-id prompts get <|bos|> put before them unless they begin with it, and echo
    /// them as given; text_offset counts characters (as Python does), not bytes.
    @Test func tokenPromptsAndTextOffsets() throws {
        let limits = APILimits(context: 64, maxTokens: 8)
        let bos = tokenizer.bosID
        let ids = tokenizer.encode("The cat")
        for (given, fed) in [([bos] + ids, [bos] + ids), (ids, [bos] + ids)] {
            let body = #"{"prompt": [\#(given.map(String.init).joined(separator: ","))], "echo": true, "max_tokens": 1}"#
            let api = try OpenAIAPI.parse(Data(body.utf8), chat: false, tokenizer: tokenizer, limits: limits, seed: 0)
            #expect(api.generation.prompt == fed && api.echo == [given])
        }
        let text = "Ünïcödé ✓ 日本語 ok"
        let tokens = tokenizer.encode(text)
        let (object, end) = OpenAIAPI.completionLogprobs(tokens.map { ($0, nil) }, tokenizer: tokenizer, offset: 3)
        let pieces = try #require(object["tokens"] as? [String]), offsets = try #require(object["text_offset"] as? [Int])
        // Each token's text is its bytes as UTF-8 (U+FFFD where it ends inside a character):
        // offsets advance by characters of those texts, which bytes would overcount.
        let want = pieces.indices.map { 3 + pieces[..<$0].map(\.unicodeScalars.count).reduce(0, +) }
        #expect(pieces.contains { $0.unicodeScalars.count != $0.utf8.count }, "the text must hold characters of several bytes")
        #expect(offsets == want && end == 3 + pieces.map(\.unicodeScalars.count).reduce(0, +), "\(offsets) against \(want)")
    }

    /// Completions' top_logprobs are keyed by text: of alternatives with the same text (two
    /// bytes that each begin a character, both shown as U+FFFD) the likelier one stays.
    @Test func alternativesOfTheSameTextKeepTheLikelier() throws {
        func id(_ byte: UInt8) throws -> Int32 {
            try #require((0..<Int32(tokenizer.vocabSize)).first { (try? tokenizer.bytes(of: $0)) == [byte] })
        }
        let (e6, e7, a) = (try id(0xE6), try id(0xE7), try id(UInt8(ascii: "a")))
        let score = TokenScore(token: a, logprob: -2, top: [.init(token: e6, logprob: -0.5), .init(token: e7, logprob: -1.5),
                                                             .init(token: a, logprob: -2)])
        let (object, _) = OpenAIAPI.completionLogprobs([(a, score)], tokenizer: tokenizer)
        let tops = try #require(object["top_logprobs"] as? [[String: Double]])
        #expect(tops == [["\u{FFFD}": -0.5, "a": -2]])
    }

    /// The access policy before any route: an API key on /v1/ (not on the page or /health),
    /// pages of other origins refused and allowed ones marked for CORS (and their preflight
    /// answered), and the Host names a loopback server answers.
    @Test func accessPolicyGuardsTheAPI() async throws {
        let engine = ChatEngine(model: try model(), tokenizer: tokenizer, slots: 2)
        engine.start()
        defer { engine.stop() }
        let access = AccessPolicy(apiKey: "sesame", allowedOrigins: ["https://app.example"])
        let app = app(engine, access: access)
        let body = ByteBuffer(string: #"{"prompt":"Hello","max_tokens":2,"temperature":0}"#)
        try await app.test(.router) { client in
            try await client.execute(uri: "/v1/completions", method: .post, body: body) { r in
                let error = try json(r.body)["error"] as? [String: Any]
                #expect(r.status == .unauthorized && error?["code"] as? String == "invalid_api_key")
            }
            try await client.execute(uri: "/v1/models", method: .get, headers: [.authorization: "Bearer sesam"]) { r in
                #expect(r.status == .unauthorized)
            }
            try await client.execute(uri: "/v1/completions", method: .post, headers: [.authorization: "Bearer sesame"], body: body) { r in
                #expect(r.status == .ok)
            }
            try await client.execute(uri: "/health", method: .get) { r in #expect(r.status == .ok) }
            try await client.execute(uri: "/", method: .get) { r in #expect(r.status == .ok) }
            // A page of another site: refused before the key is looked at.
            try await client.execute(uri: "/v1/completions", method: .post,
                                     headers: [.authorization: "Bearer sesame", .origin: "https://evil.example"], body: body) { r in
                #expect(r.status == .forbidden && String(buffer: r.body).contains("--allow-origin https://evil.example"))
            }
            // The page's own origin, and an allowed one (marked for the browser).
            try await client.execute(uri: "/v1/models", method: .get,
                                     headers: [.authorization: "Bearer sesame", .origin: "http://localhost"]) { r in
                #expect(r.status == .ok && r.headers[.accessControlAllowOrigin] == nil)
            }
            try await client.execute(uri: "/v1/models", method: .get,
                                     headers: [.authorization: "Bearer sesame", .origin: "https://app.example"]) { r in
                #expect(r.status == .ok && r.headers[.accessControlAllowOrigin] == "https://app.example")
            }
            try await client.execute(uri: "/v1/chat/completions", method: .options, headers: [.origin: "https://app.example"]) { r in
                #expect(r.status == .noContent && r.headers[.accessControlAllowOrigin] == "https://app.example")
                #expect(r.headers[.accessControlAllowHeaders]?.contains("Authorization") == true)
            }
            try await client.execute(uri: "/v1/models/test-1", method: .get, headers: [.authorization: "Bearer sesame"]) { r in
                let body = try json(r.body)
                #expect(r.status == .ok && body["id"] as? String == "test-1")
            }
            try await client.execute(uri: "/v1/models/gpt-4", method: .get, headers: [.authorization: "Bearer sesame"]) { r in
                #expect(r.status == .notFound && String(buffer: r.body).contains("model_not_found"))
            }
            // A Content-Length over the limit is refused from the header, before any body.
            try await client.execute(uri: "/v1/completions", method: .post,
                                     headers: [.authorization: "Bearer sesame"], body: ByteBuffer(string: String(repeating: " ", count: 4096))) { r in
                #expect(r.status == .contentTooLarge && String(buffer: r.body).contains("4096 bytes"))
            }
        }
        // Keys match byte for byte and in length: a prefix, a last byte changed, or zero bytes
        // added (which add nothing to the bytes' differences) are other keys.
        #expect(AccessPolicy.sameKey("sesame", "sesame") && AccessPolicy.sameKey("", ""))
        #expect(["sesam", "sesamE", "sesame\0", "\0sesame", "sesame!", ""].allSatisfy { !AccessPolicy.sameKey($0, "sesame") })
        #expect(!AccessPolicy.sameKey("\0", "") && !AccessPolicy.sameKey("", "\0"))
        #expect(AccessPolicy.hostName("[::1]:8000") == "::1" && AccessPolicy.hostName("localhost:80") == "localhost")
        #expect(AccessPolicy.hostName("127.0.0.1") == "127.0.0.1")
        #expect(AccessPolicy.isLoopback("127.0.0.1") && AccessPolicy.isLoopback("LocalHost") && AccessPolicy.isLoopback("::1"))
        #expect(!AccessPolicy.isLoopback("evil.example") && !AccessPolicy.isLoopback("0.0.0.0"))
        #expect(!AccessPolicy.isLoopback("127.evil.example") && !AccessPolicy.isLoopback("127.0.0.1.evil.example") && !AccessPolicy.isLoopback("127.0.0.256"))
        // The whole of 127.0.0.0/8 is loopback, its last address and each octet's 255 included.
        #expect(["127.255.255.255", "127.0.0.255", "127.255.0.1", "127.1.2.3"].allSatisfy(AccessPolicy.isLoopback))
        // Each of the four numbers is one to three decimal digits, nothing else: no sign, no
        // empty part, no fourth digit, no digit from another script.
        #expect(["127.0.0.0001", "127.0.0.+1", "127..0.1", "127.0.0.", "127.0.0.١", "127.0.0.1 "].allSatisfy { !AccessPolicy.isLoopback($0) })
        #expect(AccessPolicy.isLoopback("127.000.00.001"))
    }
}

/// The JSON objects of a server-sent event stream: each event a `data: ` line, the last
/// one [DONE].
private func streamChunks(_ body: ByteBuffer) throws -> [[String: Any]] {
    let events = String(buffer: body).split(separator: "\n\n").map(String.init)
    #expect(events.last == "data: [DONE]", "\(events.suffix(2))")
    return try events.dropLast().map { event in
        #expect(event.hasPrefix("data: "))
        return try #require(try JSONSerialization.jsonObject(with: Data(event.dropFirst(6).utf8)) as? [String: Any])
    }
}

/// A response body read as a JSON object.
private func json(_ buffer: ByteBuffer) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(buffer.readableBytesView)) as? [String: Any])
}

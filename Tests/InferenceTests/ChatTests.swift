// Conversations render to the ids and mask nanochat's own render_conversation gives
// (fixtures by tools/chat_fixtures.py over the test tokenizer), and bad conversations are
// refused naming the message.
import Foundation
import Blocks
import Tensor
import Testing
import Inference
import Tokenizer


@Suite struct ChatTests {
    let tokenizer: Tokenizer
    let cases: [String: Any]

    init() throws {
        tokenizer = try Tokenizer.load(from: tokenizerFixtures + "/tokenizer")
        let data = try Data(contentsOf: URL(fileURLWithPath: chatFixtures + "/chat_render.json"))
        cases = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    /// A reply's tokens, read as nanochat's engine reads them, for the terminal chat and the
    /// server alike.
    @Test func theReplyDecoderEndsCallsTheCalculatorAndHoldsSplitCharacters() throws {
        let special = ChatTokens(tokenizer)
        var chat = ReplyDecoder(tokenizer: tokenizer, special: special)
        let said = tokenizer.encode("Sum:").map { chat.step($0) }
        #expect(said.map { step -> String in if case .text(let t) = step { return t } else { return "?" } }.joined() == "Sum:")
        #expect(chat.step(special.pythonStart) == .text(""))
        for id in tokenizer.encode("2+3*4") { #expect(chat.step(id) == .text("")) }
        let answer = [special.outputStart] + tokenizer.encode("14") + [special.outputEnd]
        #expect(chat.step(special.pythonEnd) == .tool(expression: "2+3*4", answer: "14", forced: answer))
        // A call the calculator refuses is shown with no answer and forces nothing.
        _ = chat.step(special.pythonStart)
        for id in tokenizer.encode("open('x')") { _ = chat.step(id) }
        #expect(chat.step(special.pythonEnd) == .tool(expression: "open('x')", answer: nil, forced: []))
        // é is two bytes: the first token shows nothing, the second the character.
        #expect(chat.step(0xC3) == .text("") && chat.step(0xA9) == .text("é"))
        #expect(chat.step(special.assistantEnd) == .end)
        #expect(chat.step(0xC3) == .text("") && chat.finish() == "\u{FFFD}")

        // A completion: only <|bos|> ends it, and chat markers are not calls.
        var completion = ReplyDecoder(tokenizer: tokenizer, special: special, chat: false)
        #expect(completion.step(special.assistantEnd) == .text("") && completion.step(special.pythonStart) == .text(""))
        #expect(completion.step(tokenizer.encode("a")[0]) == .text("a") && completion.step(special.bos) == .end)
        var endless = ReplyDecoder(tokenizer: tokenizer, special: special, chat: false, ignoreEnd: true)
        #expect(endless.step(special.bos) == .text(""))
    }

    @Test func renderingEqualsNanochats() throws {
        let render = try #require(cases["render"] as? [[String: Any]])
        #expect(render.count == 8)
        for (i, c) in render.enumerated() {
            let conversation = try Conversation(json: try #require(c["conversation"]))
            let maxTokens = try #require(c["max_tokens"] as? Int)
            let (ids, mask) = try tokenizer.render(conversation, maxTokens: maxTokens)
            #expect(ids == (c["ids"] as? [Int])?.map(Int32.init), "case \(i): ids")
            #expect(mask == (c["mask"] as? [Int])?.map(UInt8.init), "case \(i): mask")
        }
    }

    @Test func aReplyIsPrimedAsNanochatPrimesACompletion() throws {
        let completions = try #require(cases["completion"] as? [[String: Any]])
        #expect(completions.count == 4)
        for c in completions {
            var conversation = try Conversation(json: try #require(c["conversation"]))
            conversation.messages.removeLast()
            #expect(try tokenizer.renderForReply(conversation) == (c["ids"] as? [Int])?.map(Int32.init))
        }
    }

    /// Answers as nanochat's use_calculator gives them (values taken from it); nil where it
    /// gives none. The last: Python's integers do not overflow, ours give no answer.
    @Test(arguments: [
        ("12*7", "84"), ("7/2", "3.5"), ("4/2", "2.0"), ("7//2", "3"), ("-7//2", "-4"), ("1,234+1", "1235"),
        ("2**10", nil), ("(1+2)*3-4/8", "8.5"), ("0.1+0.2", "0.30000000000000004"), ("10/3", "3.3333333333333335"),
        ("'strawberry'.count('r')", "3"), ("\"banana\".count(\"an\")", "2"), ("'aaaa'.count('aa')", "2"),
        ("'abc'.count('')", "4"), ("''.count('')", "1"), ("1/0", nil),
        ("import os", nil), ("3 - -2", "5"), ("007+1", nil), ("1e5", nil), (".5*2", "1.0"), ("99999999999*99999999999", nil),
        ("1//0.1", "9.0"), ("-1//0.1", "-10.0"), ("7.5//2", "3.0"), ("-7.5//2", "-4.0"), ("5.5//0.5", "11.0"), ("0//-3.0", "-0.0"),
        // Python raises ZeroDivisionError for float operands too: no answer.
        ("1.5/0", nil), ("2/0.0", nil), ("7//0.0", nil), ("0.0/0", nil),
        // Integer floor division of every sign, exact or not: exact quotients are not moved down.
        ("-8//2", "-4"), ("8//-2", "-4"), ("7//-2", "-4"), ("-7//-2", "3"), ("0//-5", "0"), ("-9//3", "-3"),
        // Python's str() of a float writes 1e16 and beyond with an exponent, below it with ".0".
        ("1000000000000000/1", "1000000000000000.0"), ("10000000000000000/1", "1e+16"), ("-10000000000000000/1", "-1e+16"),
        // Float floor division whose quotient lands just under a whole number is rounded up, as CPython's is.
        ("2.5//0.374", "6.0"), ("-20.441//-6.6", "3.0"),
        // A float literal past Double's range is inf, as Python's; inf times 0 is nan.
        ("1" + String(repeating: "0", count: 400) + ".0", "inf"), ("-1" + String(repeating: "0", count: 400) + ".0", "-inf"),
        ("1" + String(repeating: "0", count: 400) + ".0*0", "nan"),
        // Integers stay within 64 bits: an answer past them is none (Python's would be exact).
        ("-9223372036854775807-1", "-9223372036854775808"), ("9223372036854775807+1", nil), ("-9223372036854775807-2", nil),
        ("(-9223372036854775807-1)//-1", nil), ("-(-9223372036854775807-1)", nil), ("4611686018427387904*2", nil),
    ] as [(String, String?)])
    func calculatorAnswersAsNanochats(expression: String, answer: String?) {
        #expect(Calculator.evaluate(expression) == answer)
    }

    /// Expressions of up to `Calculator.maxLength` (1000) bytes are evaluated, longer ones get
    /// no answer (a reply cannot make the parser walk an unbounded one).
    @Test func theLongestExpressionIsAThousandBytes() {
        let sum = "1" + String(repeating: "+1", count: 499)   // 999 bytes, 500
        #expect(Calculator.maxLength == 1000)
        #expect(Calculator.evaluate(sum + " ") == "500")
        #expect(Calculator.evaluate(sum + "+1") == nil, "1001 bytes")
    }

    /// Parentheses and signs nest up to 199 deep (each level is a call of the parser); deeper
    /// gets no answer rather than a stack walked as deep as a reply can make it.
    @Test func expressionsNestUpTo199Deep() {
        let nested = { (depth: Int) in String(repeating: "(", count: depth) + "2" + String(repeating: ")", count: depth) }
        #expect(Calculator.evaluate(nested(198) + "*3") == "6")
        #expect(Calculator.evaluate(nested(199)) == nil)
        #expect(Calculator.evaluate(String(repeating: "-", count: 198) + "2") == "2")
        #expect(Calculator.evaluate(String(repeating: "-", count: 197) + "2") == "-2")
        #expect(Calculator.evaluate(String(repeating: "+", count: 199) + "2") == nil)
    }

    /// A system prompt is folded into the first user message, as rendering the conversation
    /// for a reply folds it, and is not fed again with later turns.
    @Test func aSystemPromptOpensTheFirstTurnOnly() throws {
        let model = try GPT(config: ModelConfig(sequenceLen: 64, vocabSize: tokenizer.vocabSize, nLayer: 1, nHead: 2, nKVHead: 2,
                                                nEmbd: 64, blockPattern: [.transformer]), seed: 3)
        let session = ChatSession(model: model, tokenizer: tokenizer, sampler: Sampler(temperature: 0, topK: 0, seed: 0),
                                  system: "Answer briefly.", maxReplyTokens: 3)
        let one = try session.reply(to: "Hello there")
        let primed = try tokenizer.renderForReply(Conversation([.init(.system, "Answer briefly."), .init(.user, "Hello there")]))
        #expect(one.prefilled == primed.count && Array(session.history.prefix(primed.count)) == primed)
        let two = try session.reply(to: "And again?")
        #expect(two.prefilled == 1 + 1 + tokenizer.encode("And again?").count + 2)   // the reply's end, then the message
    }

    /// A second turn feeds only its own tokens, and the cache it continues from gives the
    /// logits a fresh pass over the whole conversation gives.
    @Test func aTurnPrefillsOnlyItsOwnTokensAndTheCacheHoldsTheConversation() throws {
        for pattern: [BlockKind] in [[.transformer, .mamba], [.transformer, .transformer]] {
            let model = try GPT(config: ModelConfig(sequenceLen: 64, vocabSize: tokenizer.vocabSize, nLayer: 2, nHead: 2, nKVHead: 2,
                                                    nEmbd: 64, blockPattern: pattern), seed: 3)
            let session = ChatSession(model: model, tokenizer: tokenizer, sampler: Sampler(temperature: 0, topK: 0, seed: 0),
                                      maxReplyTokens: 6)
            let one = try session.reply(to: "Hello there")
            #expect(one.prefilled == 2 + tokenizer.encode("Hello there").count + 2)
            let two = try session.reply(to: "And again?")
            // The first reply stopped at the limit: its end marker, then the new message.
            #expect(two.prefilled == 1 + 1 + tokenizer.encode("And again?").count + 2, "\(pattern)")
            // A reply's final <|assistant_end|> is fed with the next turn (so counted twice here).
            let fed = one.prefilled + one.generated + two.prefilled + two.generated - (one.finished ? 1 : 0) - (two.finished ? 1 : 0)
            #expect(session.history.count == fed && two.contextLength == fed + (two.finished ? 1 : 0))
            // A message that leaves no room in the 64-token context is refused, nothing fed;
            // a long reply stops where the context ends.
            let before = session.history
            #expect(throws: ChatError.self) { try session.reply(to: String(repeating: "word ", count: 100)) }
            #expect(session.history == before)
            session.clear()
            session.maxReplyTokens = 1000
            let long = try session.reply(to: "Hi")
            #expect(session.history.count <= 64 && long.generated >= 1, "\(pattern): \(session.history.count) tokens")
            let next = session.sequence.feed([tokenizer.bosID])
            let full = GradMode.withoutGradients { model.logits(IndexTensor(shape: [1, session.history.count], values: session.history)) }
            let last = slice(full, axis: 1, (full.shape[1] - 1)..<full.shape[1]).doubles
            let worst = zip(next, last).map { abs($0 - $1) }.max() ?? .infinity
            #expect(worst < 1e-3, "\(pattern): cached and fresh logits differ by \(worst)")
        }
    }

    /// A reply the reader stops (the terminal's Ctrl-C) keeps its last chosen token unfed;
    /// the next turn feeds it and closes the reply with <|assistant_end|> before the new
    /// message, as a reply cut at the limit is closed.
    @Test func aStoppedReplyIsClosedBeforeTheNextTurn() throws {
        let model = try GPT(config: ModelConfig(sequenceLen: 64, vocabSize: tokenizer.vocabSize, nLayer: 2, nHead: 2, nKVHead: 2,
                                                nEmbd: 64, blockPattern: [.transformer, .mamba]), seed: 3)
        let t = ChatTokens(tokenizer)
        for stopAfter in [1, 3] {
            let session = ChatSession(model: model, tokenizer: tokenizer, sampler: Sampler(temperature: 0, topK: 0, seed: 0),
                                      maxReplyTokens: 20)
            var pieces = 0
            let one = try session.reply(to: "Hello there") { piece in
                guard case .text(let s) = piece, !s.isEmpty else { return true }
                pieces += 1
                return pieces < stopAfter
            }
            #expect(!one.finished && pieces == stopAfter, "the reply streams text before it is stopped")
            let before = session.history.count
            let two = try session.reply(to: "Again")
            #expect(two.prefilled == 1 + 1 + 1 + tokenizer.encode("Again").count + 2, "stopped after \(stopAfter)")
            #expect(session.history[before + 1] == t.assistantEnd && session.history[before + 2] == t.userStart)
        }
    }

    /// A calculator call the model writes is answered: the reader sees the call and its
    /// answer (as «expr = value»), the answer is fed between output markers and decoding goes
    /// on from it; <|assistant_end|> ends the reply and is fed with the next turn. A call the
    /// calculator cannot answer feeds nothing more; a reader who stops at the answer leaves
    /// the call's end unfed, closed before the next turn.
    @Test func aCalculatorCallIsAnsweredAndDecodingGoesOnFromTheAnswer() throws {
        let t = ChatTokens(tokenizer)
        let done = tokenizer.encode(" Done")
        // The model writes the call, then from `after` on " Done" and the end.
        func script(_ expression: String, after: Int32) throws -> (GPT, [Int32]) {
            let expr = tokenizer.encode(expression)
            return (try scriptedModel(tokenizer, chains: [[t.assistantStart, t.pythonStart] + expr + [t.pythonEnd],
                                                          [after] + done + [t.assistantEnd]]), expr)
        }
        func greedy(_ model: GPT) -> ChatSession {
            ChatSession(model: model, tokenizer: tokenizer, sampler: Sampler(temperature: 0, topK: 0, seed: 0), maxReplyTokens: 40)
        }
        let (model, expr) = try script("12+30", after: t.outputEnd)
        let session = greedy(model)
        var shown = "", calls: [String] = [], answers: [String?] = []
        let one = try session.reply(to: "Add them") { piece in
            shown += piece.shown
            if case .toolCall(let e) = piece { calls.append(e) }
            if case .toolResult(let a) = piece { answers.append(a) }
            return true
        }
        let answer = [t.outputStart] + tokenizer.encode("42") + [t.outputEnd]
        let prompt = [t.bos, t.userStart] + tokenizer.encode("Add them") + [t.userEnd, t.assistantStart]
        #expect(calls == ["12+30"] && answers == ["42"])
        #expect(shown == "«12+30 = 42» Done" && one.text == " Done" && one.finished)
        #expect(session.history == prompt + [t.pythonStart] + expr + [t.pythonEnd] + answer + done)
        #expect(one.generated == 1 + expr.count + 1 + answer.count + done.count + 1 && one.contextLength == session.history.count + 1)
        let two = try session.reply(to: "Again")
        #expect(session.history.count > one.contextLength && session.history[one.contextLength - 1] == t.assistantEnd)
        #expect(two.prefilled == 1 + 1 + tokenizer.encode("Again").count + 2)

        // "12+" has no answer: the call is shown without one and decoding goes on from its end.
        let (unanswered, expr2) = try script("12+", after: t.pythonEnd)
        let s2 = greedy(unanswered)
        var shown2 = ""
        let r2 = try s2.reply(to: "Add them") { shown2 += $0.shown; return true }
        #expect(shown2 == "«12+ = no answer» Done" && r2.finished)
        #expect(s2.history == prompt + [t.pythonStart] + expr2 + [t.pythonEnd] + done)

        // Stopped when the answer arrives: nothing after the call is fed until the next turn.
        let s3 = greedy(model)
        let r3 = try s3.reply(to: "Add them") { piece in if case .toolResult = piece { return false }; return true }
        #expect(!r3.finished && s3.history == prompt + [t.pythonStart] + expr)
        let r4 = try s3.reply(to: "Again")
        #expect(r4.prefilled == 1 + 1 + 1 + tokenizer.encode("Again").count + 2)
        #expect(Array(s3.history[(prompt.count + 1 + expr.count)...].prefix(3)) == [t.pythonEnd, t.assistantEnd, t.userStart])

        // Where the answer fills the context to its last position, the reply ends there (the
        // call and its answer pending, nothing drawn past the context); one position more and
        // the first token of " Done" is drawn into it.
        let fill = prompt.count + 1 + expr.count + 1 + answer.count
        for (context, text) in [(fill, ""), (fill + 1, try tokenizer.decode([done[0]]))] {
            let chains = [[t.assistantStart, t.pythonStart] + expr + [t.pythonEnd], [t.outputEnd] + done + [t.assistantEnd]]
            let s5 = greedy(try scriptedModel(tokenizer, chains: chains, sequenceLen: context))
            var shown5 = ""
            let r5 = try s5.reply(to: "Add them") { shown5 += $0.shown; return true }
            #expect(r5.contextLength == context && !r5.finished && r5.text == text, "context \(context): \(r5)")
            #expect(shown5 == "«12+30 = 42»" + text)
            #expect(r5.generated == 1 + expr.count + 1 + answer.count + (text.isEmpty ? 0 : 1))
        }
    }

    @Test func badConversationsNameTheMessage() throws {
        func refused(_ json: String) -> String {
            do {
                _ = try tokenizer.render(try Conversation(jsonLine: Array(json.utf8)))
                return "accepted"
            } catch { return "\(error)" }
        }
        #expect(refused(#"{"messages": [{"role": "assistant", "content": "hi"}]}"#)
                == "message 0 is from the assistant but should be from the user (after the system message, user and assistant alternate)")
        #expect(refused(#"{"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}"#).hasPrefix("message 1 is from the user"))
        #expect(refused(#"{"messages": [{"role": "system", "content": "s"}]}"#) == "a system message must be followed by a user message")
        #expect(refused(#"{"messages": [{"role": "robot", "content": "x"}]}"#) == "message 0: role must be \"system\", \"user\" or \"assistant\", got robot")
        #expect(refused(#"{"messages": [{"role": "user", "content": 5}]}"#) == "message 0 (user): content must be a string")
        #expect(refused(#"{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": [{"type": "shell", "text": "ls"}]}]}"#)
                == "message 1, part 0: unknown part type \"shell\" (text, python or python_output)")
        #expect(refused(#"{"messages": []}"#) == "\"messages\" is empty")
        #expect(refused(#"[1]"#) == "not a JSON object")
        #expect(refused(#"{"messages": [ "#) == "not JSON")
        // At most 10,000 messages: counted before any is read.
        func turns(_ n: Int) -> String {
            let pair = #"{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}"#
            return #"{"messages": ["# + Array(repeating: pair, count: n / 2).joined(separator: ", ") + (n % 2 == 1 ? #", {"role": "user", "content": "q"}"# : "") + "]}"
        }
        #expect(try Conversation(jsonLine: Array(turns(10_000).utf8)).messages.count == 10_000)
        #expect(refused(turns(10_001)) == "10001 messages, more than the 10000 a conversation may have")
    }
}

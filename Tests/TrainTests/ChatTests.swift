// Conversations render to the ids and mask nanochat's own render_conversation gives
// (fixtures by tools/chat_fixtures.py over the test tokenizer), and bad conversations are
// refused naming the message.
import Foundation
import Blocks
import Tensor
import Testing
@testable import Train

@Suite struct ChatTests {
    let tokenizer: Tokenizer
    let cases: [String: Any]

    init() throws {
        tokenizer = try Tokenizer.load(from: trainFixtures + "/tokenizer")
        let data = try Data(contentsOf: URL(fileURLWithPath: trainFixtures + "/chat_render.json"))
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
        ("'strawberry'.count('r')", "3"), ("\"banana\".count(\"an\")", "2"), ("'aaaa'.count('aa')", "2"), ("1/0", nil),
        ("import os", nil), ("3 - -2", "5"), ("007+1", nil), ("1e5", nil), (".5*2", "1.0"), ("99999999999*99999999999", nil),
    ] as [(String, String?)])
    func calculatorAnswersAsNanochats(expression: String, answer: String?) {
        #expect(Calculator.evaluate(expression) == answer)
    }

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

    @Test func heldOutSpellingAsksAboutWordsNeverTrainedOn() {
        let trained = Set((0..<2000).map { ChatTask.spelling.conversation(seed: UInt64($0)).messages[0].plainTextForTests })
        for i in 0..<50 {
            let (prompt, _, mentions) = ChatTask.spelling.question(seed: UInt64(i))
            #expect(mentions.count == 1 && prompt.contains(mentions[0]))
            #expect(!trained.contains(prompt))
        }
    }

    /// A second turn feeds only its own tokens, and the cache it continues from gives the
    /// logits a fresh pass over the whole conversation gives.
    @Test func aTurnPrefillsOnlyItsOwnTokensAndTheCacheHoldsTheConversation() throws {
        for pattern: [BlockKind] in [[.transformer, .mamba], [.transformer, .transformer]] {
            let model = try GPT(config: ModelConfig(sequenceLen: 64, vocabSize: tokenizer.vocabSize, nLayer: 2, nHead: 2, nKVHead: 2,
                                                    nEmbd: 64, blockPattern: pattern), seed: 3)
            let session = ChatSession(model: model, tokenizer: tokenizer, sampler: Sampler(temperature: 0, topK: 0, seed: 0),
                                      maxReplyTokens: 6)
            let one = session.reply(to: "Hello there")
            #expect(one.prefilled == 2 + tokenizer.encode("Hello there").count + 2)
            let two = session.reply(to: "And again?")
            // The first reply stopped at the limit: its end marker, then the new message.
            #expect(two.prefilled == 1 + 1 + tokenizer.encode("And again?").count + 2, "\(pattern)")
            // A reply's final <|assistant_end|> is fed with the next turn (so counted twice here).
            let fed = one.prefilled + one.generated + two.prefilled + two.generated - (one.finished ? 1 : 0) - (two.finished ? 1 : 0)
            #expect(session.history.count == fed && two.contextLength == fed + (two.finished ? 1 : 0))
            let next = session.feed([tokenizer.bosID])
            let full = GradMode.withoutGradients { model.logits(IndexTensor(shape: [1, session.history.count], values: session.history)) }
            let last = slice(full, axis: 1, (full.shape[1] - 1)..<full.shape[1]).doubles
            let worst = zip(next, last).map { abs($0 - $1) }.max() ?? .infinity
            #expect(worst < 1e-3, "\(pattern): cached and fresh logits differ by \(worst)")
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
    }
}

extension Conversation.Message {
    var plainTextForTests: String {
        parts.map { if case .text(let t) = $0 { return t } else { return "" } }.joined()
    }
}

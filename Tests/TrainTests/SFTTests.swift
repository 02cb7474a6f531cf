// Fine-tuning data: rows packed from whole conversations with their masks, and the synthetic
// tasks' held-out questions.
import Foundation
import Testing
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

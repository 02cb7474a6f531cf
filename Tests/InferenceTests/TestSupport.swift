// Where this target's tests find their files (the small tokenizer the tokenizer tests keep),
// and a model that writes what a test scripts.
import Foundation
import Blocks
import Tensor
import Tokenizer

/// Tests/TokenizerTests/Fixtures: the test tokenizer (`/tokenizer`) and its cases.
let tokenizerFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("TokenizerTests/Fixtures").path

/// Tests/InferenceTests/Fixtures: the rendered conversations.
let chatFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path

/// A model that, decoding greedily, writes each of `chains` on from its first token: after
/// token t of a chain it writes the token after it (a token may lead to one next token only).
/// Its blocks are as initialized (their output projections zero), so the residual stream at a
/// position is that position's token embedding, here one-hot in a slot of its own; the head
/// scores t's successor alone from t's slot. Other tokens get equal logits.
func scriptedModel(_ tokenizer: Tokenizer, chains: [[Int32]], sequenceLen: Int = 64,
                   pattern: [BlockKind] = [.transformer, .mamba]) throws -> GPT {
    var successors: [Int32: Int32] = [:]
    for chain in chains {
        for (t, next) in zip(chain.dropLast(), chain.dropFirst()) {
            precondition(successors.updateValue(next, forKey: t) == nil, "token \(t) leads to two next tokens in the script")
        }
    }
    let c = 64, v = tokenizer.vocabSize
    precondition(successors.count <= c)
    let config = ModelConfig(sequenceLen: sequenceLen, vocabSize: v, nLayer: pattern.count, nHead: 2, nKVHead: 2, nEmbd: c,
                             blockPattern: pattern)
    let initial = ParameterSet.initialized(config, seed: 1)
    var embedding = [Double](repeating: 0, count: v * c), head = [Double](repeating: 0, count: v * c)
    for (slot, (t, next)) in successors.sorted(by: { $0.key < $1.key }).enumerated() {
        embedding[Int(t) * c + slot] = 1
        head[Int(next) * c + slot] = 1
    }
    return try GPT(config: config, parameters: initial.replacingTensors(initial.parameters.map { p in
        switch p.name {
        case "transformer.wte.weight": return Tensor(shape: [v, c], scalars: embedding)
        case "lm_head.weight": return Tensor(shape: [v, c], scalars: head)
        default: return p.tensor
        }
    }))
}

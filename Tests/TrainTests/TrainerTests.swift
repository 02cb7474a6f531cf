// The training step: a tiny hybrid learns a repeating sequence; NaN stops it with a name.
import Foundation
import Testing
import Tensor
import Blocks
import Train

@Suite struct TrainerTests {
    @Test func tinyHybridLearnsARepeatingSequence() throws {
        let config = ModelConfig(sequenceLen: 16, vocabSize: 16, nLayer: 2, nHead: 2, nKVHead: 2, nEmbd: 32,
                                 blockPattern: [.transformer, .mamba])
        let trainer = Trainer(model: try GPT(config: config, seed: 3))
        // 0 1 2 ... 15 0 1 2 ...: each next token is determined by the current one.
        let seq = (0..<(4 * 17)).map { Int32($0 % 16) }
        let x = IndexTensor(shape: [4, 16], values: (0..<4).flatMap { b in seq[(b * 17)..<(b * 17 + 16)] })
        let y = IndexTensor(shape: [4, 16], values: (0..<4).flatMap { b in seq[(b * 17 + 1)..<(b * 17 + 17)] })
        let first = try trainer.step([(x, y)], totalSteps: 60)
        var last = first
        for _ in 1..<60 { last = try trainer.step([(x, y)], totalSteps: 60) }
        #expect(abs(first - log(16)) < 0.01, "a fresh model starts at ln V: \(first)")
        #expect(last < 0.5, "loss after 60 steps: \(last) (from \(first))")
    }

    @Test func nonFiniteLossNamesTheStep() throws {
        let config = ModelConfig(sequenceLen: 8, vocabSize: 10, nLayer: 1, nHead: 1, nKVHead: 1, nEmbd: 16, blockPattern: [.mamba])
        let model = try GPT(config: config, seed: 1)
        model.parameters["transformer.wte.weight"].data(Float.self)[0] = .nan
        let trainer = Trainer(model: model)
        let x = IndexTensor(shape: [1, 4], values: [0, 1, 2, 3]), y = IndexTensor(shape: [1, 4], values: [1, 2, 3, 4])
        #expect(throws: NonFiniteError.self) { try trainer.step([(x, y)], totalSteps: 10) }
        do { try trainer.step([(x, y)], totalSteps: 10) } catch let e as NonFiniteError {
            #expect(e.description == "step 0: loss is NaN or Inf; stopping (the last checkpoint is kept)")
        }
    }
}

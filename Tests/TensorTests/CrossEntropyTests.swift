// Fused softcapped cross entropy: against the Double reference, with logits of ±1e4,
// ignored targets, all targets ignored, a vocabulary not a multiple of 16; and gradcheck.
import Foundation
import Testing
import Tensor

extension TensorTests {
    @Suite struct CrossEntropyTests {
        func referenceMean(_ logits: Tensor, _ targets: IndexTensor, cap: Double) -> Double {
            let v = logits.shape.last!, n = targets.count
            let losses = Tensor(zeros: [n], dtype: logits.dtype)
            targets.values.withUnsafeBufferPointer { tp in
                switch logits.dtype {
                case .float32: crossEntropyReference(losses: losses.data(Float.self), logits: logits.data(Float.self),
                                                     targets: tp.baseAddress!, rows: n, vocab: v, softcap: cap)
                case .float64: crossEntropyReference(losses: losses.data(Double.self), logits: logits.data(Double.self),
                                                     targets: tp.baseAddress!, rows: n, vocab: v, softcap: cap)
                }
            }
            let valid = targets.values.filter { $0 >= 0 }.count
            return losses.doubles.reduce(0, +) / Double(valid)
        }

        @Test(arguments: [0.0, 15.0]) func forwardMatchesReference(_ cap: Double) {
            let logits = randn([2, 6, 37], seed: 1, std: 4)
            var t = randomIDs([2, 6], below: 37, seed: 2).values
            t[3] = -1; t[8] = -1
            let targets = IndexTensor(shape: [2, 6], values: t)
            let loss = crossEntropy(logits, targets: targets, softcap: cap).item
            #expect(abs(loss - referenceMean(logits, targets, cap: cap)) < 1e-5, "loss \(loss)")
        }

        @Test(arguments: [0.0, 15.0]) func backwardPassesGradcheck(_ cap: Double) {
            let logits = randn([3, 4, 21], seed: 3, std: 10)
            var t = randomIDs([3, 4], below: 21, seed: 4).values
            t[5] = -1
            let targets = IndexTensor(shape: [3, 4], values: t)
            expectGradients([logits], "cross entropy cap \(cap)") { crossEntropy($0[0], targets: targets, softcap: cap) }
        }

        @Test func extremeLogitsStayFinite() {
            // ±1e4 logits: without a cap the softmax is one-hot; the loss is 0 or 2e4 exactly.
            let logits = Tensor(shape: [2, 3], scalars: [1e4, -1e4, 0, -1e4, 1e4, 0])
            let hit = crossEntropy(logits, targets: IndexTensor(shape: [2], values: [0, 1]), softcap: 0)
            #expect(hit.item == 0)
            let miss = crossEntropy(logits, targets: IndexTensor(shape: [2], values: [1, 0]), softcap: 0)
            #expect(abs(miss.item - 2e4) < 1)
            // So does the reference the fused kernel is checked against (it shifts by the row's
            // largest logit; any other shift overflows exp here).
            #expect(referenceMean(logits, IndexTensor(shape: [2], values: [0, 1]), cap: 0) == 0)
            #expect(abs(referenceMean(logits, IndexTensor(shape: [2], values: [1, 0]), cap: 0) - 2e4) < 1)
            // With the softcap of 15 the logits saturate at ±15: loss = lse(15, -15, 0) + 15.
            let capped = crossEntropy(logits, targets: IndexTensor(shape: [2], values: [1, 0]), softcap: 15).item
            let expected = 15 + log(exp(0.0) + exp(-30.0) + exp(-15.0)) + 15
            #expect(abs(capped - expected) < 1e-4, "capped \(capped) vs \(expected)")
            // 15 is nanochat's cap and the default for a caller who names none.
            #expect(crossEntropy(logits, targets: IndexTensor(shape: [2], values: [1, 0])).item == capped)
            let perPosition = crossEntropyPerPosition(logits, targets: IndexTensor(shape: [2], values: [1, 0]))
            #expect(abs(Double(perPosition.reduce(0, +)) / 2 - expected) < 1e-4, "per position: \(perPosition)")
            // A row of 40 (its largest logit found 16 lanes at a time), ±1e4 inside the lanes.
            var wide = [Double](repeating: 0, count: 40)
            wide[5] = 1e4; wide[9] = -1e4
            let row = Tensor(shape: [1, 40], scalars: wide)
            #expect(crossEntropy(row, targets: IndexTensor(shape: [1], values: [5]), softcap: 0).item == 0)
            #expect(abs(crossEntropy(row, targets: IndexTensor(shape: [1], values: [20]), softcap: 0).item - 1e4) < 1)
            // Gradients stay finite too.
            let x = logits.copy(requiresGrad: true)
            crossEntropy(x, targets: IndexTensor(shape: [2], values: [1, 0]), softcap: 0).backward()
            #expect(x.grad!.doubles.allSatisfy { $0.isFinite })
            expectClose(x.grad!.doubles, [0.5, -0.5, 0, -0.5, 0.5, 0], atol: 1e-6, "one-hot gradient")
        }

        @Test func allTargetsIgnored() {
            let x = randn([4, 9], seed: 5).copy(requiresGrad: true)
            let loss = crossEntropy(x, targets: IndexTensor(shape: [4], values: [-1, -1, -1, -1]))
            #expect(loss.item == 0)
            loss.backward()
            #expect((x.grad?.doubles ?? []).allSatisfy { $0 == 0 })
        }
    }
}

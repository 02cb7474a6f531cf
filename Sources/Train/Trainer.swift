// One optimisation step (SPEC §2): gradient accumulation over micro-batches, a check for
// NaN/Inf that names the tensor, global-norm clipping, and the Muon + AdamW updates with
// their schedules. The training command (issue 5) drives it.
import Blocks
import Foundation
import Tensor

/// NaN or Inf where training cannot go on; names the step and the tensor.
public struct NonFiniteError: Error, CustomStringConvertible {
    public let step: Int, tensor: String
    public var description: String { "step \(step): \(tensor) is NaN or Inf; stopping (the last checkpoint is kept)" }
}

public final class Trainer {
    public let model: GPT
    public let settings: OptimizerSettings
    public let muon: Muon
    public let adam: AdamW
    /// Parameter names in the order of `muon.parameters` and `adam.parameters`.
    public let muonNames: [String], adamNames: [String]
    /// The LR multiplier of the last step.
    public private(set) var lastLRMultiplier = 1.0
    /// The factor the last step's gradients were clipped by (1: not clipped).
    public private(set) var lastClipFactor: Float = 1
    /// Steps taken; the schedules use it. Set when resuming.
    public var step = 0
    /// The ranks of a data-parallel run: each step's gradients and loss are summed over
    /// them before clipping and the update (nil: one process).
    public var world: World?

    /// Groups the model's parameters by their optimiser group. The embedding and head rates
    /// are scaled by (C/768)^-½ as nanochat does.
    public init(model: GPT, settings: OptimizerSettings = OptimizerSettings()) {
        self.model = model
        self.settings = settings
        let scale = pow(Double(model.config.nEmbd) / 768, -0.5)
        var matrices: [Tensor] = [], adamParams: [Tensor] = [], lrs: [Double] = []
        var muonNames: [String] = [], adamNames: [String] = []
        for p in model.parameters.parameters {
            switch p.group {
            case .muonMatrix where settings.muonForMatrices: matrices.append(p.tensor); muonNames.append(p.name); continue
            case .muonMatrix: lrs.append(settings.matrixLR)
            case .adamEmbedding: lrs.append(settings.embeddingLR * scale)
            case .adamHead: lrs.append(settings.unembeddingLR * scale)
            case .adamMambaScalar: lrs.append(settings.mambaLR)
            }
            adamParams.append(p.tensor)
            adamNames.append(p.name)
        }
        self.muonNames = muonNames
        self.adamNames = adamNames
        muon = Muon(parameters: matrices, lr: settings.matrixLR)
        adam = AdamW(parameters: adamParams, lrs: lrs, betas: settings.adamBetas, epsilon: settings.adamEpsilon,
                     weightDecay: settings.weightDecay)
    }

    /// Forward and backward over the micro-batches (gradients averaged), clipping, one
    /// update. Returns the mean loss. `totalSteps` sets the LR schedule's horizon.
    @discardableResult
    public func step(_ microBatches: [(x: IndexTensor, y: IndexTensor)], totalSteps: Int) throws -> Double {
        precondition(!microBatches.isEmpty)
        let params = model.parameters.parameters
        for p in params { p.tensor.zeroGrad() }
        var lossSum = 0.0
        // The mean over every micro-batch of the step, on all ranks.
        let weight = 1 / Double(microBatches.count * (world?.size ?? 1))
        for (x, y) in microBatches {
            OpProfile.mark()
            let loss = scale(model.loss(x, targets: y), weight)
            let value = loss.item
            guard value.isFinite else { throw NonFiniteError(step: step, tensor: "loss") }
            lossSum += value
            loss.backward()
        }
        if let world {
            OpProfile.measure("distributed", "gradient allreduce") {
                for p in params {
                    guard let g = p.tensor.grad else { continue }
                    world.sum(g.data(Float.self), count: g.count)
                }
            }
            lossSum = world.sum([lossSum])[0]
        }
        let squares = try OpProfile.measure("optimizer", "gradient norm") {
            var squares = 0.0
            for p in params {
                guard let g = p.tensor.grad else { continue }
                let s = squaredNorm(g.data(Float.self), count: g.count)
                guard s.isFinite else { throw NonFiniteError(step: step, tensor: "gradient of \(p.name)") }
                squares += s
            }
            return squares
        }
        // Clipping scales every gradient by one factor; the optimisers read the gradients
        // times it (the same bits as scaling them in place, without another pass over them).
        let norm = squares.squareRoot()
        let clip = settings.gradClip
        let clipFactor: Float = clip > 0 && norm > clip ? Float(clip / norm) : 1
        let lrm = Schedule.lrMultiplier(step: step, total: totalSteps, warmupRatio: settings.warmupRatio,
                                        warmdownRatio: settings.warmdownRatio, finalFraction: settings.finalLRFraction)
        lastLRMultiplier = lrm
        lastClipFactor = clipFactor
        OpProfile.measure("optimizer", "Muon") {
            muon.update(lrMultiplier: lrm, momentum: Schedule.muonMomentum(step: step), gradScale: clipFactor)
        }
        OpProfile.measure("optimizer", "AdamW") { adam.update(lrMultiplier: lrm, gradScale: clipFactor) }
        step += 1
        return lossSum
    }
}

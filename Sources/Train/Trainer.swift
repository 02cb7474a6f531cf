// One optimisation step (SPEC §2): gradient accumulation over micro-batches, a check for
// NaN/Inf that names the tensor, global-norm clipping, and the Muon + AdamW updates with
// their schedules. The training command (issue 5) drives it.
import Blocks
import Foundation
import Tensor

/// NaN or Inf where training cannot go on; names the step and the tensor.
public struct NonFiniteError: UserFacingError {
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
    /// Seconds the last step spent summing gradients onto their owners, and sharing the
    /// updated weights (0 in one process).
    public private(set) var lastReduceSeconds = 0.0, lastBroadcastSeconds = 0.0
    /// Steps taken; the schedules use it. Set when resuming.
    public var step = 0
    /// The ranks of a data-parallel run: each parameter is owned by one rank, which alone
    /// receives the sum of its gradients, keeps its optimiser state and updates it, then
    /// shares the new values (nil: one process).
    public let world: World?
    /// The owning rank of each Muon matrix and each AdamW parameter (all 0 in one process),
    /// and of each of the model's parameters in its order.
    public let muonOwners: [Int], adamOwners: [Int], parameterOwners: [Int]

    /// Groups the model's parameters by their optimiser group. The embedding and head rates
    /// are scaled by (C/768)^-½ as nanochat does.
    public init(model: GPT, settings: OptimizerSettings = OptimizerSettings(), world: World? = nil) {
        self.model = model
        self.settings = settings
        self.world = world
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
        // Sharding: the Muon matrices are spread by the work of their Newton–Schulz
        // iterations (rows · cols · min(rows, cols)), which every rank waits for before the
        // broadcast; the AdamW parameters by their size.
        let ranks = world?.size ?? 1, rank = world?.rank ?? 0
        muonOwners = World.owners(sizes: matrices.map { m in
            let rows = m.shape[0], cols = m.count / Swift.max(1, rows)
            return rows * cols * Swift.min(rows, cols)
        }, ranks: ranks)
        adamOwners = World.owners(sizes: adamParams.map(\.count), ranks: ranks)
        let owners = muonOwners + adamOwners
        var ownerOf: [ObjectIdentifier: Int] = [:]
        for (t, o) in zip(matrices + adamParams, owners) { ownerOf[ObjectIdentifier(t)] = o }
        parameterOwners = model.parameters.parameters.map { ownerOf[ObjectIdentifier($0.tensor)] ?? 0 }
        muon = Muon(parameters: matrices, lr: settings.matrixLR, owned: muonOwners.map { $0 == rank })
        adam = AdamW(parameters: adamParams, lrs: lrs, betas: settings.adamBetas, epsilon: settings.adamEpsilon,
                     weightDecay: settings.weightDecay, owned: adamOwners.map { $0 == rank })
    }

    /// Floats per collective call: tensors are packed into buckets of this size (one call per
    /// bucket instead of one per tensor), a tensor larger than it goes alone and in place.
    public static let bucketFloats = 1 << 22
    private var bucket: [Float] = []

    /// Runs `collective` over the tensors' contents, packing small tensors together; each
    /// tensor gets back what the collective left in its part of the bucket.
    func inBuckets(_ tensors: [Tensor], _ collective: (UnsafeMutablePointer<Float>, Int) -> Void) {
        if bucket.isEmpty { bucket = [Float](repeating: 0, count: Trainer.bucketFloats) }
        var pending: [Tensor] = [], filled = 0
        func flush() {
            guard !pending.isEmpty else { return }
            bucket.withUnsafeMutableBufferPointer { b in
                guard let base = b.baseAddress else { return }
                var at = 0
                for t in pending { (base + at).update(from: t.data(Float.self), count: t.count); at += t.count }
                collective(base, filled)
                at = 0
                for t in pending { t.data(Float.self).update(from: base + at, count: t.count); at += t.count }
            }
            pending = []
            filled = 0
        }
        for t in tensors {
            if t.count > Trainer.bucketFloats {
                collective(t.data(Float.self), t.count)
                continue
            }
            if filled + t.count > Trainer.bucketFloats { flush() }
            pending.append(t)
            filled += t.count
        }
        flush()
    }

    /// Bytes of optimiser state this process holds.
    public var stateBytes: Int { (muon.buffers + adam.m + adam.v).reduce(0) { $0 + $1.count * 4 } }

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
        let rank = world?.rank ?? 0
        if let world {
            // Each parameter's gradient is summed onto the rank that owns it (the only one
            // that reads it), bucket by bucket, owner by owner.
            let t0 = DispatchTime.now().uptimeNanoseconds
            OpProfile.measure("distributed", "gradient reduce") {
                for owner in 0..<world.size {
                    let grads = params.indices.filter { parameterOwners[$0] == owner }.compactMap { params[$0].tensor.grad }
                    inBuckets(grads) { bucket, count in world.sum(bucket, count: count, into: owner) }
                }
            }
            lossSum = world.sum([lossSum])[0]
            lastReduceSeconds = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
        }
        var squares = 0.0, nonFinite: String? = nil
        OpProfile.measure("optimizer", "gradient norm") {
            for (i, p) in params.enumerated() where parameterOwners[i] == rank {
                guard let g = p.tensor.grad else { continue }
                let s = squaredNorm(g.data(Float.self), count: g.count)
                if !s.isFinite && nonFinite == nil { nonFinite = p.name }
                squares += s
            }
        }
        if let world { squares = world.sum([squares])[0] }   // the global norm, on every rank
        guard squares.isFinite else {
            throw NonFiniteError(step: step, tensor: nonFinite.map { "gradient of \($0)" } ?? "a gradient another rank owns")
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
        if let world {
            let t0 = DispatchTime.now().uptimeNanoseconds
            defer { lastBroadcastSeconds = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9 }
            OpProfile.measure("distributed", "weight broadcast") {
                let all = Array(zip(muon.parameters + adam.parameters, muonOwners + adamOwners))
                for owner in 0..<world.size {
                    inBuckets(all.filter { $0.1 == owner }.map(\.0)) { bucket, count in world.broadcast(bucket, count: count, root: owner) }
                }
            }
        }
        step += 1
        return lossSum
    }
}

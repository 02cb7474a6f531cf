// The training recipe of SPEC §2: the optimisers' hyperparameters and the schedules. The
// optimisers themselves (AdamW, Muon) are in Tensor/Optim.
import Foundation

/// Hyperparameters of one run (SPEC §2 defaults).
public struct OptimizerSettings: Sendable {
    public var matrixLR = 0.02, embeddingLR = 0.2, unembeddingLR = 0.004
    /// AdamW rate for A_log, D, conv1d.* and dt_proj.bias. The seed had none; 0.004 (the
    /// head's rate, unscaled) keeps Mamba's decay and step-size parameters stable.
    public var mambaLR = 0.004
    public var weightDecay = 0.0
    public var adamBetas = (0.8, 0.95), adamEpsilon = 1e-10
    /// LR schedule: warm up over the first warmupRatio of the steps, hold, then decay
    /// linearly to finalLRFraction over the last warmdownRatio.
    public var warmupRatio = 0.0, warmdownRatio = 0.2, finalLRFraction = 0.0
    /// The global gradient norm is clipped to this (0: no clipping).
    public var gradClip = 1.0
    /// Muon for the matrices (nanochat); false puts them in AdamW at matrix_lr instead, as a
    /// plain PyTorch setup would (the benchmark's like-for-like comparison).
    public var muonForMatrices = true
    /// Under MPI without a shared-memory window (ranks on several hosts), send each gradient
    /// to its owner as soon as the backward pass has finished it, while the pass goes on, and
    /// each updated weight to every rank while the next forward pass runs; false sums the
    /// gradients after the backward pass (MPI_Reduce_scatter, which adds in its own order)
    /// and shares the weights after the optimiser (MPI_Allgatherv).
    public var overlapExchange = true
    public init() {}
}

/// The schedules of SPEC §2.
public enum Schedule {
    /// LR multiplier at `step` of `total`: linear warmup over the first warmupRatio, 1, then
    /// linear to finalFraction over the last warmdownRatio.
    public static func lrMultiplier(step: Int, total: Int, warmupRatio: Double = 0, warmdownRatio: Double = 0.2,
                                    finalFraction: Double = 0) -> Double {
        let warmup = Int((warmupRatio * Double(total)).rounded()), warmdown = Int((warmdownRatio * Double(total)).rounded())
        if step < warmup { return Double(step + 1) / Double(warmup) }
        if step <= total - warmdown { return 1 }
        let progress = Double(total - step) / Double(max(warmdown, 1))
        return progress + (1 - progress) * finalFraction
    }

    /// Muon momentum: 0.85 rising linearly to 0.95 over the first 300 steps.
    public static func muonMomentum(step: Int) -> Double {
        let f = min(Double(step) / 300, 1)
        return (1 - f) * 0.85 + f * 0.95
    }
}

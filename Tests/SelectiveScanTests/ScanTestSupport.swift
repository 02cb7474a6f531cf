// Random scan problems with Mamba-like value ranges, and comparisons that name the tensor,
// the largest difference and where it is.
import Foundation
import Testing
import Tensor
import SelectiveScan

/// Every suite nests here.
@Suite struct SelectiveScanTests {}

/// The eight inputs of a scan, Float32, drawn as a freshly initialised Mamba block sees them:
/// Δ near softplus⁻¹ of [1e-3, 0.1], A_log = log(n+1), D = 1.
struct ScanProblem {
    let shape: ScanShape
    let u, deltaRaw, dtBias, aLog, bm, cm, d, z: Tensor

    init(batch: Int, time: Int, channels: Int, state: Int, chunk: Int = scanChunkLength, seed: UInt64, dtype: DType = .float32) {
        shape = ScanShape(batch: batch, time: time, channels: channels, state: state, chunk: chunk)
        var g = SeededGenerator(seed: seed)
        let bt = [batch, time]
        u = .randomNormal(bt + [channels], dtype: dtype, generator: &g)
        deltaRaw = .randomNormal(bt + [channels], std: 0.5, dtype: dtype, generator: &g)
        dtBias = Tensor(shape: [channels], scalars: (0..<channels).map { _ -> Double in
            let dt = exp(log(1e-3) + (log(0.1) - log(1e-3)) * g.nextUnit())
            return dt + log(-expm1(-dt))
        }, dtype: dtype)
        aLog = Tensor(shape: [channels, state], scalars: (0..<(channels * state)).map { log(Double($0 % state + 1)) }, dtype: dtype)
        bm = .randomNormal(bt + [state], dtype: dtype, generator: &g)
        cm = .randomNormal(bt + [state], dtype: dtype, generator: &g)
        d = Tensor(shape: [channels], scalars: (0..<channels).map { _ in 1 + 0.1 * g.nextNormal() }, dtype: dtype)
        z = .randomNormal(bt + [channels], dtype: dtype, generator: &g)
    }

    var tensors: [Tensor] { [u, deltaRaw, dtBias, aLog, bm, cm, d, z] }
    static let names = ["u", "deltaRaw", "dt_bias", "A_log", "B", "C", "D", "z"]

    func inputs() -> ScanInputs<Float> {
        ScanInputs(u: u.data(Float.self), deltaRaw: deltaRaw.data(Float.self), dtBias: dtBias.data(Float.self),
                   aLog: aLog.data(Float.self), bm: bm.data(Float.self), cm: cm.data(Float.self),
                   d: d.data(Float.self), z: z.data(Float.self))
    }

    /// Zeroed gradient tensors, one per input, and the ScanGradients over them.
    func gradientBuffers() -> ([Tensor], ScanGradients<Float>) {
        let t = tensors.map { Tensor(zeros: $0.shape) }
        let p = t.map { $0.data(Float.self) }
        return (t, ScanGradients(u: p[0], deltaRaw: p[1], dtBias: p[2], aLog: p[3], bm: p[4], cm: p[5], d: p[6], z: p[7]))
    }
}

/// Expects |a - e| ≤ atol + rtol·max|e| for every element (tolerance relative to the
/// tensor's scale, as gradient sums over T grow with T); reports the worst element.
func expectScaledClose(_ actual: [Double], _ expected: [Double], atol: Double, rtol: Double, _ label: String,
                       sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(actual.count == expected.count, "\(label): sizes differ", sourceLocation: sourceLocation)
    let scale = expected.map(abs).max() ?? 0
    var worst = 0, maxDiff = 0.0
    for i in 0..<min(actual.count, expected.count) {
        let diff = abs(actual[i] - expected[i])
        if !(diff <= maxDiff) { maxDiff = diff.isNaN ? .infinity : diff; worst = i }
    }
    #expect(maxDiff <= atol + rtol * scale, """
        \(label): max |diff| \(maxDiff) at \(worst) (got \(actual.isEmpty ? 0 : actual[worst]), expected \
        \(expected.isEmpty ? 0 : expected[worst])); allowed \(atol) + \(rtol)·\(scale)
        """, sourceLocation: sourceLocation)
}

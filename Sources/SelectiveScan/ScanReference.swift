// The sequential reference scan, forward and backward, in the most direct form: one
// channel at a time, every state kept. The fast scan is tested against it.
import Foundation
import Tensor

/// out (B, T, Di) by the plain recurrence, accumulating in Double; optional initial and
/// final (B, Di, N) states as `selectiveScanForward`.
public func selectiveScanReference<S: TensorScalar>(
    out: UnsafeMutablePointer<S>, inputs x: ScanInputs<S>, shape sh: ScanShape,
    initialState: UnsafePointer<S>? = nil, finalState: UnsafeMutablePointer<S>? = nil
) {
    let (bn, tn, di, n) = (sh.batch, sh.time, sh.channels, sh.state)
    for b in 0..<bn {
        for d in 0..<di {
            var h = [Double](repeating: 0, count: n)
            if let initialState { for k in 0..<n { h[k] = Double(initialState[(b * di + d) * n + k]) } }
            let a = (0..<n).map { -Foundation.exp(Double(x.aLog[d * n + $0])) }
            for t in 0..<tn {
                let i = (b * tn + t) * di + d, s = (b * tn + t) * n
                let delta = Softplus.reference(Double(x.deltaRaw[i]) + Double(x.dtBias[d]))
                let u = Double(x.u[i])
                var y = Double(x.d[d]) * u
                for k in 0..<n {
                    h[k] = Foundation.exp(delta * a[k]) * h[k] + delta * Double(x.bm[s + k]) * u
                    y += Double(x.cm[s + k]) * h[k]
                }
                let z = Double(x.z[i])
                out[i] = S(y * z / (1 + Foundation.exp(-z)))
            }
            if let finalState { for k in 0..<n { finalState[(b * di + d) * n + k] = S(h[k]) } }
        }
    }
}

/// Adds into `grads` the gradients of `selectiveScanReference` (zero initial state) given
/// dout, by the plain reverse recurrence with every state kept, in Double.
public func selectiveScanBackwardReference<S: TensorScalar>(
    grads g: ScanGradients<S>, dout: UnsafePointer<S>, inputs x: ScanInputs<S>, shape sh: ScanShape
) {
    let (bn, tn, di, n) = (sh.batch, sh.time, sh.channels, sh.state)
    for b in 0..<bn {
        for d in 0..<di {
            let a = (0..<n).map { -Foundation.exp(Double(x.aLog[d * n + $0])) }
            var hs = [Double](repeating: 0, count: (tn + 1) * n)   // hs[t+1] = h_t, hs[0] = h_{-1} = 0
            var deltas = [Double](repeating: 0, count: tn)
            for t in 0..<tn {
                let i = (b * tn + t) * di + d, s = (b * tn + t) * n
                deltas[t] = Softplus.reference(Double(x.deltaRaw[i]) + Double(x.dtBias[d]))
                for k in 0..<n {
                    hs[(t + 1) * n + k] = Foundation.exp(deltas[t] * a[k]) * hs[t * n + k]
                        + deltas[t] * Double(x.bm[s + k]) * Double(x.u[i])
                }
            }
            var dh = [Double](repeating: 0, count: n)
            var dA = [Double](repeating: 0, count: n)
            var dD = 0.0, dBias = 0.0
            for t in stride(from: tn - 1, through: 0, by: -1) {
                let i = (b * tn + t) * di + d, s = (b * tn + t) * n
                let u = Double(x.u[i]), z = Double(x.z[i]), delta = deltas[t]
                var y = Double(x.d[d]) * u
                for k in 0..<n { y += Double(x.cm[s + k]) * hs[(t + 1) * n + k] }
                let sz = 1 / (1 + Foundation.exp(-z))
                let dy = Double(dout[i]) * z * sz
                g.z[i] += S(Double(dout[i]) * y * sz * (1 + z * (1 - sz)))
                dD += dy * u
                var du = dy * Double(x.d[d]), ddelta = 0.0
                for k in 0..<n {
                    let gk = dh[k] + dy * Double(x.cm[s + k])
                    let decay = Foundation.exp(delta * a[k]), hprev = hs[t * n + k]
                    g.cm[s + k] += S(dy * hs[(t + 1) * n + k])
                    ddelta += gk * (a[k] * decay * hprev + Double(x.bm[s + k]) * u)
                    dA[k] += gk * delta * decay * hprev
                    g.bm[s + k] += S(gk * delta * u)
                    du += gk * delta * Double(x.bm[s + k])
                    dh[k] = gk * decay
                }
                let dr = Double(x.deltaRaw[i]) + Double(x.dtBias[d])
                let ddr = ddelta / (1 + Foundation.exp(-dr))
                g.deltaRaw[i] += S(ddr)
                dBias += ddr
                g.u[i] += S(du)
            }
            for k in 0..<n { g.aLog[d * n + k] += S(dA[k] * a[k]) }   // dA/dA_log = A
            g.d[d] += S(dD)
            g.dtBias[d] += S(dBias)
        }
    }
}

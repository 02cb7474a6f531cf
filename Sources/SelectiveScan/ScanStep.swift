// One step of the selective scan, for decoding a token at a time with a (B, Di, N) state.
import Tensor

/// Advances `state` (B, Di, N) by one time step and writes out (B, Di) = y · silu(z).
/// `inputs` hold one step: u, deltaRaw, z (B, Di); bm, cm (B, N); dtBias, D (Di);
/// A_log (Di, N). Same math as one step of `selectiveScanForward`. A = -exp(A_log) is
/// computed once per call, whatever the batch (a server steps many sequences together).
@inlinable
public func selectiveScanStep<S: TensorScalar>(
    out: UnsafeMutablePointer<S>, state: UnsafeMutablePointer<S>, inputs x: ScanInputs<S>,
    batch: Int, channels di: Int, state n: Int
) {
    let rates = UnsafeMutablePointer<S>.allocate(capacity: di * n)   // A · log2 e
    defer { rates.deallocate() }
    Parallel.forRanges(di * n, grain: 1024, alignment: 1) { range in
        for i in range { rates[i] = -S.exp(x.aLog[i]) * S(1.4426950408889634) }
    }
    Parallel.forRanges(batch * di, grain: 64, alignment: 1) { range in
        for item in range {
            let b = item / di, d = item % di
            let h = state + item * n, rate = UnsafePointer(rates) + d * n, bm = x.bm + b * n, cm = x.cm + b * n
            let delta = Softplus.forward(SIMD16(repeating: x.deltaRaw[item] + x.dtBias[d]))
            let u = x.u[item]
            let du = delta * u
            var acc = SIMD16<S>()
            var k = 0
            while k < n {
                let m = Swift.min(16, n - k)
                var a = SIMD16<S>(), bv = SIMD16<S>(), cv = SIMD16<S>(), hv = SIMD16<S>()
                if m == 16 {
                    a = UnsafeRawPointer(rate + k).loadUnaligned(as: SIMD16<S>.self)
                    bv = UnsafeRawPointer(bm + k).loadUnaligned(as: SIMD16<S>.self)
                    cv = UnsafeRawPointer(cm + k).loadUnaligned(as: SIMD16<S>.self)
                    hv = UnsafeRawPointer(h + k).loadUnaligned(as: SIMD16<S>.self)
                } else {
                    for l in 0..<m {
                        a[l] = rate[k + l]; bv[l] = bm[k + l]; cv[l] = cm[k + l]; hv[l] = h[k + l]
                    }
                }
                hv = S.vmuladd(du, bv, S.vexp2Decay(delta * a) * hv)
                if m == 16 {
                    UnsafeMutableRawPointer(h + k).storeBytes(of: hv, as: SIMD16<S>.self)
                } else {
                    for l in 0..<m { h[k + l] = hv[l] }
                }
                acc = S.vmuladd(cv, hv, acc)   // lanes past m hold 0 · 0
                k += m
            }
            let y = hsum(acc) + x.d[d] * u
            out[item] = y * Silu.forward(SIMD16(repeating: x.z[item]))[0]
        }
    }
}

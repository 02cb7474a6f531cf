// Plain scalar Swift loops: the baselines the SIMD kernels are measured against. Written as
// a careful programmer would without SIMD: one element at a time, libm's expf, no threads.
import Foundation

enum ScalarLoops {
    static func siluForward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int) {
        for i in 0..<n { y[i] = x[i] / (1 + Foundation.exp(-x[i])) }
    }

    static func siluBackward(_ dx: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ n: Int) {
        for i in 0..<n {
            let s = 1 / (1 + Foundation.exp(-x[i]))
            dx[i] += dy[i] * s * (1 + x[i] * (1 - s))
        }
    }

    /// Softcapped cross entropy per row; returns the summed loss.
    static func crossEntropyForward(_ logits: UnsafePointer<Float>, _ targets: [Int32], _ v: Int, cap: Float) -> Float {
        var total: Float = 0
        for r in 0..<targets.count {
            let row = logits + r * v
            var m = -Float.infinity
            for j in 0..<v { m = max(m, cap * Foundation.tanh(row[j] / cap)) }
            var s: Float = 0
            for j in 0..<v { s += Foundation.exp(cap * Foundation.tanh(row[j] / cap) - m) }
            total += m + Foundation.log(s) - cap * Foundation.tanh(row[Int(targets[r])] / cap)
        }
        return total
    }

    static func crossEntropyBackward(_ dlogits: UnsafeMutablePointer<Float>, _ logits: UnsafePointer<Float>,
                                     _ targets: [Int32], _ v: Int, cap: Float, scale g: Float) {
        for r in 0..<targets.count {
            let row = logits + r * v, drow = dlogits + r * v
            var m = -Float.infinity
            for j in 0..<v { m = max(m, cap * Foundation.tanh(row[j] / cap)) }
            var s: Float = 0
            for j in 0..<v { s += Foundation.exp(cap * Foundation.tanh(row[j] / cap) - m) }
            for j in 0..<v {
                let t = Foundation.tanh(row[j] / cap)
                let p = Foundation.exp(cap * t - m) / s - (j == Int(targets[r]) ? 1 : 0)
                drow[j] += g * p * (1 - t * t)
            }
        }
    }

    /// Causal attention, q (T, H, hd), k, v (T, H, hd), one batch; Float accumulators.
    static func attentionForward(_ y: UnsafeMutablePointer<Float>, _ q: UnsafePointer<Float>, _ k: UnsafePointer<Float>,
                                 _ v: UnsafePointer<Float>, t: Int, h: Int, hd: Int) {
        let scale = 1 / Float(hd).squareRoot()
        var w = [Float](repeating: 0, count: t)
        for head in 0..<h {
            for i in 0..<t {
                let qi = q + (i * h + head) * hd
                var m = -Float.infinity
                for j in 0...i {
                    let kj = k + (j * h + head) * hd
                    var s: Float = 0
                    for c in 0..<hd { s += qi[c] * kj[c] }
                    w[j] = s * scale
                    m = max(m, w[j])
                }
                var total: Float = 0
                for j in 0...i { w[j] = Foundation.exp(w[j] - m); total += w[j] }
                let yi = y + (i * h + head) * hd
                for c in 0..<hd {
                    var acc: Float = 0
                    for j in 0...i { acc += w[j] * v[(j * h + head) * hd + c] }
                    yi[c] = acc / total
                }
            }
        }
    }

    /// Backward of `attentionForward`, recomputing the probabilities row by row.
    static func attentionBackward(_ dq: UnsafeMutablePointer<Float>, _ dk: UnsafeMutablePointer<Float>,
                                  _ dv: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>,
                                  _ q: UnsafePointer<Float>, _ k: UnsafePointer<Float>, _ v: UnsafePointer<Float>,
                                  t: Int, h: Int, hd: Int) {
        let scale = 1 / Float(hd).squareRoot()
        var p = [Float](repeating: 0, count: t), dp = p
        for head in 0..<h {
            for i in 0..<t {
                let qi = q + (i * h + head) * hd, dyi = dy + (i * h + head) * hd
                var m = -Float.infinity
                for j in 0...i {
                    var s: Float = 0
                    for c in 0..<hd { s += qi[c] * k[(j * h + head) * hd + c] }
                    p[j] = s * scale
                    m = max(m, p[j])
                }
                var total: Float = 0
                for j in 0...i { p[j] = Foundation.exp(p[j] - m); total += p[j] }
                var d: Float = 0
                for j in 0...i {
                    p[j] /= total
                    var s: Float = 0
                    for c in 0..<hd { s += dyi[c] * v[(j * h + head) * hd + c] }
                    dp[j] = s
                    d += p[j] * s
                }
                for j in 0...i {
                    let ds = p[j] * (dp[j] - d) * scale
                    let kj = (j * h + head) * hd
                    for c in 0..<hd {
                        dq[(i * h + head) * hd + c] += ds * k[kj + c]
                        dk[kj + c] += ds * qi[c]
                        dv[kj + c] += p[j] * dyi[c]
                    }
                }
            }
        }
    }
}

// Mamba's causal depthwise conv1d over time (kernel K, with bias), forward, backward and
// the single-step form with a rolling state, and the op on the tape:
//   y[b,t,d] = bias[d] + Σ_{k<K} w[d,k] · x[b, t-(K-1)+k, d],   x before t = 0 is 0.
// Channels are the SIMD axis; threads split the channels, so each owns its dw, dbias sums.
import Tensor

/// y (B, T, Di) = causal conv of x (B, T, Di) with weight (Di, K) and bias (Di).
@inlinable
public func causalConvForward<S: TensorScalar>(
    out y: UnsafeMutablePointer<S>, inp x: UnsafePointer<S>, weight w: UnsafePointer<S>, bias: UnsafePointer<S>,
    batch: Int, time: Int, channels di: Int, kernel kw: Int
) {
    Parallel.forRanges(di, grain: 16) { chans in
        forEachChannelBlock(chans) { d0, wd in
            let bv = loadChannels(bias + d0, wd)
            var taps = [SIMD16<S>](repeating: SIMD16(), count: kw)
            for k in 0..<kw { for l in 0..<wd { taps[k][l] = w[(d0 + l) * kw + k] } }
            for b in 0..<batch {
                for t in 0..<time {
                    var acc = bv
                    for k in Swift.max(0, kw - 1 - t)..<kw {
                        acc = S.vmuladd(taps[k], loadChannels(x + (b * time + t - (kw - 1) + k) * di + d0, wd), acc)
                    }
                    storeChannels(acc, y + (b * time + t) * di + d0, wd)
                }
            }
        }
    }
}

/// Adds the gradients of `causalConvForward` into dx (B, T, Di), dweight (Di, K), dbias (Di).
@inlinable
public func causalConvBackward<S: TensorScalar>(
    dinp dx: UnsafeMutablePointer<S>, dweight dw: UnsafeMutablePointer<S>, dbias: UnsafeMutablePointer<S>,
    dout dy: UnsafePointer<S>, inp x: UnsafePointer<S>, weight w: UnsafePointer<S>,
    batch: Int, time: Int, channels di: Int, kernel kw: Int
) {
    Parallel.forRanges(di, grain: 16) { chans in
        forEachChannelBlock(chans) { d0, wd in
            var taps = [SIMD16<S>](repeating: SIMD16(), count: kw)
            var dtaps = taps
            for k in 0..<kw { for l in 0..<wd { taps[k][l] = w[(d0 + l) * kw + k] } }
            var db = SIMD16<S>()
            for b in 0..<batch {
                for t in 0..<time {
                    let g = loadChannels(dy + (b * time + t) * di + d0, wd)
                    db += g
                    for k in Swift.max(0, kw - 1 - t)..<kw {
                        let src = (b * time + t - (kw - 1) + k) * di + d0
                        dtaps[k] = S.vmuladd(g, loadChannels(x + src, wd), dtaps[k])
                        addChannels(g * taps[k], dx + src, wd)
                    }
                }
            }
            addChannels(db, dbias + d0, wd)
            for k in 0..<kw { for l in 0..<wd { dw[(d0 + l) * kw + k] += dtaps[k][l] } }
        }
    }
}

/// One decoding step: y (B, Di) from the new input x (B, Di) and the rolling state
/// (B, Di, K-1) holding the previous K-1 inputs, oldest first; the state then shifts in x.
@inlinable
public func causalConvStep<S: TensorScalar>(
    out y: UnsafeMutablePointer<S>, state: UnsafeMutablePointer<S>, inp x: UnsafePointer<S>,
    weight w: UnsafePointer<S>, bias: UnsafePointer<S>, batch: Int, channels di: Int, kernel kw: Int
) {
    for b in 0..<batch {
        for d in 0..<di {
            let st = state + (b * di + d) * (kw - 1), wr = w + d * kw
            var acc = bias[d] + wr[kw - 1] * x[b * di + d]
            for k in 0..<(kw - 1) { acc += wr[k] * st[k] }
            y[b * di + d] = acc
            if kw > 1 {
                for k in 0..<(kw - 2) { st[k] = st[k + 1] }
                st[kw - 2] = x[b * di + d]
            }
        }
    }
}

/// The reference: the conv by its definition, one output at a time, in Double.
public func causalConvReference<S: TensorScalar>(
    out y: UnsafeMutablePointer<S>, inp x: UnsafePointer<S>, weight w: UnsafePointer<S>, bias: UnsafePointer<S>,
    batch: Int, time: Int, channels di: Int, kernel kw: Int
) {
    for b in 0..<batch { for t in 0..<time { for d in 0..<di {
        var acc = Double(bias[d])
        for k in 0..<kw where t - (kw - 1) + k >= 0 {
            acc += Double(w[d * kw + k]) * Double(x[(b * time + t - (kw - 1) + k) * di + d])
        }
        y[(b * time + t) * di + d] = S(acc)
    } } }
}

/// Calls body(d0, width) for the 16-channel blocks of a channel range.
@inlinable @inline(__always)
func forEachChannelBlock(_ chans: Range<Int>, _ body: (Int, Int) -> Void) {
    for d0 in stride(from: chans.lowerBound, to: chans.upperBound, by: 16) {
        body(d0, Swift.min(16, chans.upperBound - d0))
    }
}

/// Causal depthwise conv1d on the tape: x (B, T, Di), weight (Di, 1, K) as PyTorch's
/// Conv1d(groups = Di), bias (Di).
public func causalConv1d(_ x: Tensor, weight: Tensor, bias: Tensor) -> Tensor {
    precondition(x.rank == 3 && weight.rank == 3 && weight.shape[0] == x.shape[2] && weight.shape[1] == 1
                 && bias.shape == [x.shape[2]] && weight.dtype == x.dtype && bias.dtype == x.dtype,
                 "conv1d: x (B, T, Di), weight (Di, 1, K), bias (Di); got \(x.shape), \(weight.shape), \(bias.shape)")
    let (b, t, di, k) = (x.shape[0], x.shape[1], x.shape[2], weight.shape[2])
    let y = Tensor(uninitializedShape: x.shape, dtype: x.dtype)
    func run<S: TensorScalar>(_: S.Type) {
        causalConvForward(out: y.data(S.self), inp: x.data(S.self), weight: weight.data(S.self), bias: bias.data(S.self),
                          batch: b, time: t, channels: di, kernel: k)
        y.record("causal_conv1d", [x, weight, bias]) { y in
            causalConvBackward(dinp: x.gradData(S.self), dweight: weight.gradData(S.self), dbias: bias.gradData(S.self),
                               dout: y.gradData(S.self), inp: x.data(S.self), weight: weight.data(S.self),
                               batch: b, time: t, channels: di, kernel: k)
        }
    }
    if x.dtype == .float32 { run(Float.self) } else { run(Double.self) }
    return y
}

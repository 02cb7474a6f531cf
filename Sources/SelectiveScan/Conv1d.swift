// Mamba's causal depthwise conv1d over time (kernel K, with bias), forward, backward and
// the single-step form with a rolling state, and the op on the tape:
//   y[b,t,d] = bias[d] + Σ_{k<K} w[d,k] · x[b, t-(K-1)+k, d],   x before t = 0 is 0.
// Channels are the SIMD axis; workers take ranges of channels, so each owns its dw, dbias sums.
import Tensor

/// y (B, T, Di) = causal conv of x (B, T, Di) with weight (Di, K) and bias (Di).
///
/// Each worker takes a range of channels and walks time with the range's channels inner, so
/// it reads rows of x along memory (where the hardware prefetchers follow) instead of one
/// 16-channel column Di floats apart per step.
@inlinable
public func causalConvForward<S: TensorScalar>(
    out y: UnsafeMutablePointer<S>, inp x: UnsafePointer<S>, weight w: UnsafePointer<S>, bias: UnsafePointer<S>,
    batch: Int, time: Int, channels di: Int, kernel kw: Int
) {
    let ranges = (di + convGrain - 1) / convGrain
    Parallel.forEach(batch * ranges) { item in
        let (b, chans) = convItem(item, ranges: ranges, channels: di)
        let blocks = (chans.count + 15) / 16
        withUnsafeTemporaryAllocation(of: SIMD16<S>.self, capacity: blocks * (kw + 1)) { buffer in
            let taps = buffer.baseAddress!, biases = taps + blocks * kw
            loadTaps(w, bias: bias, chans, kernel: kw, taps: taps, biases: biases)
            for t in 0..<time {
                let first = Swift.max(0, kw - 1 - t)
                forEachChannelBlock(chans) { d0, wd in
                    let blk = (d0 - chans.lowerBound) / 16, tp = taps + blk * kw
                    var acc = biases[blk]
                    for k in first..<kw {
                        acc = S.vmuladd(tp[k], loadChannels(x + (b * time + t - (kw - 1) + k) * di + d0, wd), acc)
                    }
                    storeChannels(acc, y + (b * time + t) * di + d0, wd)
                }
            }
        }
    }
}

/// Adds the gradients of `causalConvForward` into dx (B, T, Di), dweight (Di, K), dbias (Di).
/// dx is gathered, dx_t = Σ_k w_k · dy_{t+K-1-k}, so each element is read and written once;
/// time is walked with the range's channels inner, as in the forward.
@inlinable
public func causalConvBackward<S: TensorScalar>(
    dinp dx: UnsafeMutablePointer<S>, dweight dw: UnsafeMutablePointer<S>, dbias: UnsafeMutablePointer<S>,
    dout dy: UnsafePointer<S>, inp x: UnsafePointer<S>, weight w: UnsafePointer<S>,
    batch: Int, time: Int, channels di: Int, kernel kw: Int
) {
    // Items are (sequence, 64-channel range); each sums its weight and bias gradients over
    // its sequence alone into `partial`, and the sequences' sums are added in order after:
    // the cut depends on the shape only.
    guard batch > 0 else { return }
    let ranges = (di + convGrain - 1) / convGrain
    withScratch(S.self, count: batch * di * (kw + 1)) { partial in
        Parallel.forEach(batch * ranges) { item in
            let (b, chans) = convItem(item, ranges: ranges, channels: di)
            let blocks = (chans.count + 15) / 16
            withUnsafeTemporaryAllocation(of: SIMD16<S>.self, capacity: blocks * (2 * kw + 1)) { buffer in
                let taps = buffer.baseAddress!, dtaps = taps + blocks * kw, dbiases = dtaps + blocks * kw
                loadTaps(w, bias: nil, chans, kernel: kw, taps: taps, biases: nil)
                for i in 0..<(blocks * (kw + 1)) { dtaps[i] = SIMD16() }
                for t in 0..<time {
                    // x_{t-(K-1)+k} exists for k ≥ K-1-t; dy_{t+K-1-k} for k ≥ t+K-T.
                    let first = Swift.max(0, kw - 1 - t), lowest = Swift.max(0, t + kw - time)
                    let row = (b * time + t) * di
                    forEachChannelBlock(chans) { d0, wd in
                        let blk = (d0 - chans.lowerBound) / 16, tp = taps + blk * kw, dtp = dtaps + blk * kw
                        let g = loadChannels(dy + row + d0, wd)
                        dbiases[blk] += g
                        for k in first..<kw {
                            dtp[k] = S.vmuladd(g, loadChannels(x + row - (kw - 1 - k) * di + d0, wd), dtp[k])
                        }
                        var acc = SIMD16<S>()
                        for k in lowest..<kw {
                            acc = S.vmuladd(tp[k], loadChannels(dy + row + (kw - 1 - k) * di + d0, wd), acc)
                        }
                        addChannels(acc, dx + row + d0, wd)
                    }
                }
                let mine = partial + b * di * (kw + 1)
                forEachChannelBlock(chans) { d0, wd in
                    let blk = (d0 - chans.lowerBound) / 16
                    for l in 0..<wd { mine[di * kw + d0 + l] = dbiases[blk][l] }
                    for k in 0..<kw { for l in 0..<wd { mine[(d0 + l) * kw + k] = dtaps[blk * kw + k][l] } }
                }
            }
        }
        // dweight (Di, K) then dbias (Di) follow each other in `partial`'s rows: one sum over the
        // sequences, in order, for both.
        Parallel.forRanges(di * (kw + 1), grain: 1 << 12) { part in
            for i in part {
                var sum = partial[i]
                for b in 1..<batch { sum += partial[b * di * (kw + 1) + i] }
                if i < di * kw { dw[i] += sum } else { dbias[i - di * kw] += sum }
            }
        }
    }
}

/// Channels per range of the conv's work items: 64 (4 blocks of 16), so a row's share of a
/// range is a few whole cache lines.
public let convGrain = 64

/// Work item `item` of the conv's (sequence, channel range) items, `ranges` ranges of
/// `convGrain` channels per sequence: its sequence and its channels.
@inlinable @inline(__always)
func convItem(_ item: Int, ranges: Int, channels di: Int) -> (batch: Int, channels: Range<Int>) {
    let r = item % ranges
    return (item / ranges, r * convGrain..<Swift.min(di, (r + 1) * convGrain))
}

/// Loads the K taps (and the bias) of a channel range, one vector per 16-channel block and
/// tap: taps (blocks, K), biases (blocks).
@inlinable @inline(__always)
func loadTaps<S: TensorScalar>(_ w: UnsafePointer<S>, bias: UnsafePointer<S>?, _ chans: Range<Int>, kernel kw: Int,
                               taps: UnsafeMutablePointer<SIMD16<S>>, biases: UnsafeMutablePointer<SIMD16<S>>?) {
    forEachChannelBlock(chans) { d0, wd in
        let blk = (d0 - chans.lowerBound) / 16
        for k in 0..<kw {
            var v = SIMD16<S>()
            for l in 0..<wd { v[l] = w[(d0 + l) * kw + k] }
            taps[blk * kw + k] = v
        }
        if let bias, let biases { biases[blk] = loadChannels(bias + d0, wd) }
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

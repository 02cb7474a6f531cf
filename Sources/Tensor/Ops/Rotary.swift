// Rotary position embedding (SPEC §1.2), base 10000, rotating the two halves of each head:
// for pair j < hd/2 at position t, f = t · base^(-2j/hd),
//   y1 = x1 cos f + x2 sin f,   y2 = -x1 sin f + x2 cos f,   x1 = x[:hd/2], x2 = x[hd/2:].
// Below: the table and the kernel, then the op on the tape.
import Foundation

/// cos and sin of t · base^(-2j/hd) for t < maxPositions and j < hd/2, computed once in
/// Double and kept in both dtypes.
public final class RotaryTable: @unchecked Sendable {
    public let headDim: Int
    public let maxPositions: Int
    // (maxPositions, hd/2) each, immutable after init.
    @usableFromInline let cos32, sin32: UnsafeMutablePointer<Float>
    @usableFromInline let cos64, sin64: UnsafeMutablePointer<Double>

    public init(headDim: Int, maxPositions: Int, base: Double = 10000) {
        precondition(headDim % 2 == 0 && headDim > 0, "rotary needs an even head dim, got \(headDim)")
        self.headDim = headDim
        self.maxPositions = maxPositions
        let half = headDim / 2, n = maxPositions * half
        // Filled as arrays (every write bounds-checked, in any build), then copied.
        var cosines = [Double](repeating: 0, count: n), sines = [Double](repeating: 0, count: n)
        for t in 0..<maxPositions {
            for j in 0..<half {
                let f = Double(t) * pow(base, -2.0 * Double(j) / Double(headDim))
                cosines[t * half + j] = Foundation.cos(f); sines[t * half + j] = Foundation.sin(f)
            }
        }
        cos64 = .allocate(capacity: n); sin64 = .allocate(capacity: n)
        cos32 = .allocate(capacity: n); sin32 = .allocate(capacity: n)
        cos64.initialize(from: cosines, count: n); sin64.initialize(from: sines, count: n)
        cos32.initialize(from: cosines.map(Float.init), count: n); sin32.initialize(from: sines.map(Float.init), count: n)
    }

    deinit {
        cos32.deallocate(); sin32.deallocate(); cos64.deallocate(); sin64.deallocate()
    }

    @inlinable
    func tables<S: TensorScalar>(_: S.Type) -> (cos: UnsafePointer<S>, sin: UnsafePointer<S>) {
        switch S.dtype {
        case .float32: return (UnsafeRawPointer(cos32).assumingMemoryBound(to: S.self),
                               UnsafeRawPointer(sin32).assumingMemoryBound(to: S.self))
        case .float64: return (UnsafeRawPointer(cos64).assumingMemoryBound(to: S.self),
                               UnsafeRawPointer(sin64).assumingMemoryBound(to: S.self))
        }
    }
}

/// Rotates x (B, T, heads, hd) at positions offset..<offset+T into out (same shape).
/// With `inverse`, applies the transposed rotation (the backward pass) and adds into out
/// (writes it when `accumulate` is false).
@inlinable
public func rotaryApply<S: TensorScalar>(
    out: UnsafeMutablePointer<S>, inp x: UnsafePointer<S>, table: RotaryTable,
    batch b: Int, time t: Int, heads h: Int, offset: Int, inverse: Bool, accumulate: Bool = true
) {
    let hd = table.headDim, half = hd / 2
    precondition(offset + t <= table.maxPositions,
                 "rotary table holds \(table.maxPositions) positions, need \(offset + t)")
    let (cosT, sinT) = table.tables(S.self)
    Parallel.forRanges(b * t, grain: 8, alignment: 1) { rows in
        for row in rows {
            let pos = offset + row % t
            let c = cosT + pos * half, s = sinT + pos * half
            for head in 0..<h {
                let base = (row * h + head) * hd
                let x1 = x + base, x2 = x1 + half, y1 = out + base, y2 = y1 + half
                var j = 0
                while j < half {
                    let n = Swift.min(16, half - j)
                    let a = loadPartial(x1 + j, n), bb = loadPartial(x2 + j, n)
                    let cv = loadPartial(c + j, n), sv = loadPartial(s + j, n)
                    if inverse && accumulate {
                        // dx1 = dy1 cos - dy2 sin, dx2 = dy1 sin + dy2 cos (accumulated)
                        storePartial(loadPartial(y1 + j, n) + (a * cv - bb * sv), y1 + j, n)
                        storePartial(loadPartial(y2 + j, n) + (a * sv + bb * cv), y2 + j, n)
                    } else if inverse {
                        storePartial(a * cv - bb * sv, y1 + j, n)
                        storePartial(a * sv + bb * cv, y2 + j, n)
                    } else {
                        storePartial(a * cv + bb * sv, y1 + j, n)
                        storePartial(bb * cv - a * sv, y2 + j, n)
                    }
                    j += n
                }
            }
        }
    }
}

/// Rotates x (B, T, heads, hd) as at positions offset..<offset+T (SPEC §1.2).
public func rotary(_ x: Tensor, table: RotaryTable, offset: Int = 0) -> Tensor {
    precondition(x.rank == 4 && x.shape[3] == table.headDim,
                 "rotary expects (B, T, heads, \(table.headDim)), got \(x.shape)")
    switch x.dtype {
    case .float32: return rotaryOp(x, table, offset, Float.self)
    case .float64: return rotaryOp(x, table, offset, Double.self)
    }
}

func rotaryOp<S: TensorScalar>(_ x: Tensor, _ table: RotaryTable, _ offset: Int, _: S.Type) -> Tensor {
    let (b, t, h) = (x.shape[0], x.shape[1], x.shape[2])
    let y = Tensor(uninitializedShape: x.shape, dtype: x.dtype)
    rotaryApply(out: y.data(S.self), inp: x.data(S.self), table: table, batch: b, time: t, heads: h,
                offset: offset, inverse: false)
    y.record("rotary", [x]) { y in
        let (dx, accumulate) = x.gradForWriting(S.self)
        rotaryApply(out: dx, inp: y.gradData(S.self), table: table, batch: b, time: t,
                    heads: h, offset: offset, inverse: true, accumulate: accumulate)
    }
    return y
}

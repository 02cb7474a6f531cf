// Muon (SPEC §2): Nesterov momentum, then the update orthogonalised by Newton–Schulz, for
// the 2-D weights inside the layers.
import Foundation

/// Quintic Newton–Schulz coefficients of nanochat's Muon (a, b, c).
public let newtonSchulzCoefficients: (Float, Float, Float) = (3.4445, -4.7750, 2.0315)

/// X ← an approximately orthogonal matrix with the singular vectors of g (rows × cols):
/// X = g / (‖g‖_F + 1e-7), then `steps` times A = X Xᵀ, B = b A + c A², X = a X + B X with X
/// in its wide form, so that A is min(rows, cols) square. The singular values end near 1 (in
/// about [0.7, 1.2]: the quintic trades exactness for speed, as in Muon). A and A² = A Aᵀ are
/// symmetric, so both are Gram products (`gram`: half the multiply-adds of a full product).
/// A tall g is not transposed for this: the iteration on its transpose, transposed back, is
/// A = XᵀX and X = a X + X B, which is what runs.
public func newtonSchulz(_ g: UnsafePointer<Float>, rows: Int, cols: Int, steps: Int = 5) -> [Float] {
    [Float](unsafeUninitializedCapacity: rows * cols) { buffer, initialized in
        if let out = buffer.baseAddress { newtonSchulz(g, rows: rows, cols: cols, steps: steps, into: out) }
        initialized = rows * cols
    }
}

/// `newtonSchulz` into `out` (rows × cols), its working memory from the pool: Muon runs it
/// on every matrix every step, and fresh memory would be paid for in page faults each time.
func newtonSchulz(_ g: UnsafePointer<Float>, rows: Int, cols: Int, steps: Int = 5, into out: UnsafeMutablePointer<Float>) {
    let tall = rows > cols
    let r = Swift.min(rows, cols), count = rows * cols
    let inv = Float(1 / (squaredNorm(g, count: count).squareRoot() + 1e-7))
    let (ca, cb, cc) = newtonSchulzCoefficients
    withScratch(Float.self, count: count + 2 * r * r) { scratch in
        var x = out, next = scratch
        let a = scratch + count, b = a + r * r
        for i in 0..<count { x[i] = g[i] * inv }
        a.update(repeating: 0, count: r * r)
        for _ in 0..<steps {
            // A = X Xᵀ (wide) or XᵀX (tall)
            gram(transpose: tall, n: r, k: Swift.max(rows, cols), a: x, c: a)
            // B = b A + c A A
            for i in 0..<(r * r) { b[i] = cb * a[i] }
            gram(n: r, k: r, a: a, c: b, alpha: cc, beta: 1)
            // X = a X + B X (wide) or a X + X B (tall)
            next.update(from: x, count: count)
            if tall {
                gemm(m: rows, n: cols, k: cols, a: x, b: b, c: next, alpha: 1, beta: ca)
            } else {
                gemm(m: rows, n: cols, k: rows, a: b, b: x, c: next, alpha: 1, beta: ca)
            }
            swap(&x, &next)
        }
        if x != out { out.update(from: x, count: count) }
    }
}

/// Muon: Nesterov momentum, then the update orthogonalised by Newton–Schulz (SPEC §2):
///   buf = lerp(buf, g, 1-μ);  g = lerp(g, buf, μ);  X = NS5(g);
///   p -= lr · max(1, rows/cols)^½ · X
public final class Muon {
    public let parameters: [Tensor]
    public let lr: Double
    /// Momentum buffers, one per parameter (empty for a parameter this process does not own).
    public let buffers: [Tensor]
    /// The parameters this process updates (all, unless the state is sharded over ranks).
    public let owned: [Bool]

    /// `owned` nil: every parameter; else only those marked, the others keep no state and
    /// are left as they are (another rank updates them).
    public init(parameters: [Tensor], lr: Double, owned: [Bool]? = nil) {
        self.parameters = parameters
        self.lr = lr
        let mine = owned ?? Array(repeating: true, count: parameters.count)
        self.owned = mine
        buffers = zip(parameters, mine).map { p, own in Tensor(zeros: own ? p.shape : [0]) }
    }

    /// One update with the learning rate times `lrMultiplier`, reading each gradient times
    /// `gradScale` (the clipping factor).
    ///
    /// The matrices are orthogonalised side by side, each whole on one worker (largest
    /// first): their products are too small to split well across workers (a 768² Gram
    /// product ran hardly faster on 2 threads than on 1). A d12 step's Muon took 1.17-1.18x
    /// less time this way than with each matrix split over 2 workers (same run, all-T and
    /// all-M). The bits are those of one thread.
    public func update(lrMultiplier: Double, momentum: Double, gradScale: Float = 1) {
        let mu = Float(momentum)
        let cost = parameters.map { p -> Int in
            let rows = p.shape[0], cols = p.count / rows
            return rows * cols * Swift.min(rows, cols)
        }
        let order = parameters.indices.filter { owned[$0] }.sorted { cost[$0] != cost[$1] ? cost[$0] > cost[$1] : $0 < $1 }
        Parallel.forEachItem(order.count) { item in
            let i = order[item], p = parameters[i]
            guard let g = p.grad else { return }
            let rows = p.shape[0], cols = p.count / rows
            let (gp, bp, pp) = (g.data(Float.self), buffers[i].data(Float.self), p.data(Float.self))
            withScratch(Float.self, count: 2 * p.count) { scratch in
                let nesterov = scratch, x = scratch + p.count
                for j in 0..<p.count {
                    let gj = gp[j] * gradScale
                    bp[j] += (1 - mu) * (gj - bp[j])              // buf = lerp(buf, g, 1-μ)
                    nesterov[j] = gj + mu * (bp[j] - gj)          // g = lerp(g, buf, μ)
                }
                newtonSchulz(nesterov, rows: rows, cols: cols, into: x)
                let scale = Float(lr * lrMultiplier * max(1, Double(rows) / Double(cols)).squareRoot())
                for j in 0..<p.count { pp[j] -= scale * x[j] }
            }
        }
    }
}

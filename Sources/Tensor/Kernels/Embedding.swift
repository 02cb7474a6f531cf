// Embedding lookup: out[i] = weight[ids[i]]; its backward scatter-adds rows.

/// out (n, C) = weight (V, C) rows picked by ids (n). Ids must lie in 0..<V.
@inlinable
public func embeddingForward<S: TensorScalar>(
    out: UnsafeMutablePointer<S>, weight: UnsafePointer<S>, ids: UnsafePointer<Int32>,
    count n: Int, channels c: Int
) {
    Parallel.forRanges(n, grain: Swift.max(1, 8192 / Swift.max(c, 1)), alignment: 1) { range in
        for i in range { (out + i * c).update(from: weight + Int(ids[i]) * c, count: c) }
    }
}

/// dweight[ids[i]] += dout[i] for i < n. Threads split the channels, and every thread walks
/// the tokens in order, so repeated ids add up in the same order on any thread count.
@inlinable
public func embeddingBackward<S: TensorScalar>(
    dweight: UnsafeMutablePointer<S>, dout: UnsafePointer<S>, ids: UnsafePointer<Int32>,
    count n: Int, channels c: Int
) {
    let grain = n >= 64 ? 16 : c  // tiny batches: not worth a thread
    Parallel.forRanges(c, grain: grain) { cols in
        for i in 0..<n {
            let dst = dweight + Int(ids[i]) * c, src = dout + i * c
            var j = cols.lowerBound
            while j + 16 <= cols.upperBound { store(load(dst + j) + load(src + j), dst + j); j += 16 }
            while j < cols.upperBound { dst[j] += src[j]; j += 1 }
        }
    }
}

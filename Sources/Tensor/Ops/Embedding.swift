// Embedding lookup: out[i] = weight[ids[i]]; its backward scatter-adds rows.
// Below: the kernels, then the op on the tape and the integer tensors that index it.


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

/// Token ids (or targets, with -1 for "ignore") and their shape, e.g. (B, T).
public struct IndexTensor: Sendable, Equatable {
    public let shape: [Int]
    public let values: [Int32]

    public init(shape: [Int], values: [Int32]) {
        precondition(shape.reduce(1, *) == values.count,
                     "index shape \(shape) needs \(shape.reduce(1, *)) values, got \(values.count)")
        self.shape = shape
        self.values = values
    }

    public var count: Int { values.count }
}

/// weight (V, C) rows picked by ids: output shape ids.shape + [C]. Ids must lie in 0..<V.
public func embedding(_ weight: Tensor, _ ids: IndexTensor) -> Tensor {
    precondition(weight.rank == 2, "embedding weight must be (V, C), got \(weight.shape)")
    let v = weight.shape[0]
    if let bad = ids.values.firstIndex(where: { $0 < 0 || Int($0) >= v }) {
        preconditionFailure("embedding: id \(ids.values[bad]) at position \(bad) is outside 0..<\(v)")
    }
    switch weight.dtype {
    case .float32: return embeddingOp(weight, ids, Float.self)
    case .float64: return embeddingOp(weight, ids, Double.self)
    }
}

func embeddingOp<S: TensorScalar>(_ weight: Tensor, _ ids: IndexTensor, _: S.Type) -> Tensor {
    let c = weight.shape[1]
    let y = Tensor(uninitializedShape: ids.shape + [c], dtype: weight.dtype)
    ids.values.withUnsafeBufferPointer { idp in
        embeddingForward(out: y.data(S.self), weight: weight.data(S.self), ids: idp.baseAddress!,
                         count: ids.count, channels: c)
    }
    y.record("embedding", [weight]) { y in
        ids.values.withUnsafeBufferPointer { idp in
            embeddingBackward(dweight: weight.gradData(S.self), dout: y.gradData(S.self),
                              ids: idp.baseAddress!, count: ids.count, channels: c)
        }
    }
    return y
}

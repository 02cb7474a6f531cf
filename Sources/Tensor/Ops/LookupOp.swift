// Embedding lookup on the tape, and the integer tensors that index it.

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

import Foundation

// Tensor: a shape, contiguous row-major storage, and the autograd hooks.
//
// Glossary (shared by every target):
//   B  batch size            T  sequence length (time)     C  channels (n_embd)
//   H  query heads           KV key/value heads            hd head dim (C / H)
//   V  vocabulary size       Di Mamba inner width          N  Mamba state size
//   R  Mamba dt rank         K  Mamba conv kernel width
//
// A tensor is a reference type: ops return new tensors and record, when gradients are
// wanted, a `Node` that knows how to push the output's gradient back into the inputs.
// Gradients accumulate (+=) into `grad`; `zeroGrad()` clears them.

/// An n-dimensional array of `Float` (training) or `Double` (gradient checking).
public final class Tensor: @unchecked Sendable {
    public let shape: [Int]
    public let dtype: DType
    /// Number of elements.
    public let count: Int
    /// Replaced only by `placeData`, which no op runs beside; read by every op, so without
    /// the run-time exclusivity check a `var` would otherwise get.
    @exclusivity(unchecked) private(set) var storage: Buffer
    var gradStorage: Buffer?
    /// Set by `zeroGrad()`: the gradient storage holds stale values that count as zeros until
    /// the next write (a memset, or a backward rule that overwrites instead of adding).
    var gradIsStale = false
    /// Whether gradients flow into this tensor. Set on leaves (parameters, inputs);
    /// op outputs inherit it from their inputs.
    public var requiresGrad: Bool
    /// The op that produced this tensor, while the graph is alive (nil for leaves).
    var node: Node?
    /// A label used in error reports (parameter name, op name).
    public var name: String?
    /// This weight rounded to bf16 and packed for inference products (`packBF16()`).
    var packedBF16: PackedBF16Weight?

    init(shape: [Int], dtype: DType, storage: Buffer, requiresGrad: Bool = false) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in shape \(shape)")
        self.shape = shape
        self.dtype = dtype
        self.count = shape.reduce(1, *)
        precondition(storage.byteCount >= count * dtype.byteSize)
        self.storage = storage
        self.requiresGrad = requiresGrad
    }

    /// An uninitialised tensor (contents unspecified), for kernels that write every element.
    public convenience init(uninitializedShape shape: [Int], dtype: DType = .float32) {
        let n = shape.reduce(1, *)
        self.init(shape: shape, dtype: dtype, storage: Buffer(byteCount: n * dtype.byteSize))
    }

    /// A tensor of zeros.
    public convenience init(zeros shape: [Int], dtype: DType = .float32, requiresGrad: Bool = false) {
        let n = shape.reduce(1, *)
        self.init(shape: shape, dtype: dtype, storage: Buffer(zeroedByteCount: n * dtype.byteSize),
                  requiresGrad: requiresGrad)
    }

    /// A tensor holding `scalars` (row-major), converted to `dtype`.
    public convenience init<S: BinaryFloatingPoint>(
        shape: [Int], scalars: [S], dtype: DType = .float32, requiresGrad: Bool = false
    ) {
        precondition(shape.reduce(1, *) == scalars.count,
                     "shape \(shape) needs \(shape.reduce(1, *)) scalars, got \(scalars.count)")
        self.init(uninitializedShape: shape, dtype: dtype)
        self.requiresGrad = requiresGrad
        switch dtype {
        case .float32: let p = data(Float.self); for i in 0..<count { p[i] = Float(scalars[i]) }
        case .float64: let p = data(Double.self); for i in 0..<count { p[i] = Double(scalars[i]) }
        }
    }

    /// A tensor of the given shape filled with `value`.
    public convenience init(repeating value: Double, shape: [Int], dtype: DType = .float32) {
        self.init(uninitializedShape: shape, dtype: dtype)
        switch dtype {
        case .float32: data(Float.self).update(repeating: Float(value), count: count)
        case .float64: data(Double.self).update(repeating: value, count: count)
        }
    }

    public var rank: Int { shape.count }

    /// Typed pointer to the storage. The dtype must match `S`.
    @inline(__always)
    public func data<S: TensorScalar>(_: S.Type) -> UnsafeMutablePointer<S> {
        precondition(S.dtype == dtype, "tensor holds \(dtype), asked for \(S.dtype)")
        return storage.pointer(S.self)
    }

    /// Typed buffer over the storage.
    @inline(__always)
    public func buffer<S: TensorScalar>(_: S.Type) -> UnsafeMutableBufferPointer<S> {
        UnsafeMutableBufferPointer(start: data(S.self), count: count)
    }

    /// Keeps this tensor's values in `memory` from now on: `count` elements of its dtype that
    /// the caller keeps alive as long as the tensor (data-parallel ranks on one host share one
    /// copy of the weights). The values are copied there when `copyingValues`; otherwise the
    /// memory is taken as it is (another process puts them there). Views taken before keep
    /// the old memory, so place a tensor before any are taken (a parameter between steps).
    public func placeData(at memory: UnsafeMutableRawPointer, copyingValues: Bool) {
        let bytes = count * dtype.byteSize
        if copyingValues { memory.copyMemory(from: storage.raw, byteCount: bytes) }
        storage = Buffer(external: memory, byteCount: bytes)
        packedBF16 = nil
    }

    /// The storage's raw bytes (count · dtype.byteSize of them), for file IO.
    public var storageBytes: UnsafeMutableRawPointer { storage.raw }

    /// The elements as Doubles (a copy), whatever the dtype.
    public var doubles: [Double] {
        switch dtype {
        case .float32: return buffer(Float.self).map(Double.init)
        case .float64: return Array(buffer(Double.self))
        }
    }

    /// The elements as Floats (a copy), whatever the dtype.
    public var floats: [Float] {
        switch dtype {
        case .float32: return Array(buffer(Float.self))
        case .float64: return buffer(Double.self).map(Float.init)
        }
    }

    /// The single element of a one-element tensor.
    public var item: Double {
        precondition(count == 1, "item needs one element, tensor has shape \(shape)")
        return doubles[0]
    }

    /// A copy with its own storage, detached from the graph, in `dtype`.
    public func copy(dtype: DType? = nil, requiresGrad: Bool = false) -> Tensor {
        let d = dtype ?? self.dtype
        let out = Tensor(uninitializedShape: shape, dtype: d)
        out.requiresGrad = requiresGrad
        switch (self.dtype, d) {
        case (.float32, .float32): out.data(Float.self).update(from: data(Float.self), count: count)
        case (.float64, .float64): out.data(Double.self).update(from: data(Double.self), count: count)
        case (.float32, .float64):
            let (src, dst) = (data(Float.self), out.data(Double.self))
            for i in 0..<count { dst[i] = Double(src[i]) }
        case (.float64, .float32):
            let (src, dst) = (data(Double.self), out.data(Float.self))
            for i in 0..<count { dst[i] = Float(src[i]) }
        }
        return out
    }

    /// A tensor sharing this one's storage, outside the graph.
    public func detached() -> Tensor {
        Tensor(shape: shape, dtype: dtype, storage: storage)
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let head = doubles.prefix(8).map { String(format: "%.4g", $0) }.joined(separator: ", ")
        return "Tensor(\(dtype), \(shape), [\(head)\(count > 8 ? ", ..." : "")])"
    }
}

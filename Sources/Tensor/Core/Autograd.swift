// Reverse-mode autograd: each op that sees an input needing gradients records a Node on its
// output: the inputs, and a closure that adds the output's gradient into theirs. The nodes
// form the tape; `backward()` replays it from the loss in reverse creation order.

import Synchronization

/// A recorded op: its inputs and its backward rule.
final class Node {
    let op: String
    let inputs: [Tensor]
    /// Adds d(loss)/d(input) into each input's gradient, given the output (whose `grad`
    /// holds d(loss)/d(output)).
    let backward: (Tensor) -> Void
    /// Creation order; a valid reverse topological order for the tape.
    let sequence: Int

    init(op: String, inputs: [Tensor], sequence: Int, backward: @escaping (Tensor) -> Void) {
        self.op = op
        self.inputs = inputs
        self.sequence = sequence
        self.backward = backward
    }
}

/// Whether ops record nodes. Recording is on by default; `withoutGradients` turns it off
/// for inference (sampling, evaluation), where outputs are plain tensors.
public enum GradMode {
    @TaskLocal static var enabled = true
    static let nextSequence = Atomic<Int>(0)

    public static var isEnabled: Bool { enabled }

    /// Runs `body` without recording any op.
    public static func withoutGradients<R>(_ body: () throws -> R) rethrows -> R {
        try $enabled.withValue(false, operation: body)
    }

    /// Called after each op in `betweenOps`' body.
    @TaskLocal static var afterEachOp: (@Sendable () -> Void)? = nil

    /// Runs `body`, calling `hook` after each op it runs (on this thread, right after the op's
    /// output is computed, whether or not it records a node): work that must move on while a
    /// forward pass runs, such as the transfers of a data-parallel step (MPI moves a message
    /// only while the process calls into it). `hook` should take microseconds.
    public static func betweenOps<R>(calling hook: @escaping @Sendable () -> Void, _ body: () throws -> R) rethrows -> R {
        try $afterEachOp.withValue(hook, operation: body)
    }
}

extension Tensor {
    /// Attaches the backward rule of the op that produced `self`, if any input needs
    /// gradients and recording is on. Call right after computing the forward; this is how
    /// every built-in op is written, and how you write your own.
    ///
    /// `backward` receives the output. It reads `output.gradData(S.self)` (d loss / d output)
    /// and *adds* into `input.gradData(S.self)` for each input with `requiresGrad` (asking
    /// for an input's gradient creates it, zero-filled). It runs once, during `backward()`.
    ///
    /// While `OpProfile` is on, the time since the previous op is counted to this one, and
    /// `backward` is timed when it runs.
    public func record(_ op: String, _ inputs: [Tensor], backward: @escaping (Tensor) -> Void) {
        if OpProfile.isEnabled { OpProfile.forwardOp(op) }
        GradMode.afterEachOp?()
        guard GradMode.enabled, inputs.contains(where: { $0.requiresGrad }) else { return }
        requiresGrad = true
        let sequence = GradMode.nextSequence.wrappingAdd(1, ordering: .relaxed).newValue
        node = Node(op: op, inputs: inputs, sequence: sequence, backward: backward)
    }

    /// The gradient accumulated so far, as a tensor sharing its storage (nil if none).
    public var grad: Tensor? {
        guard let g = gradStorage else { return nil }
        clearStaleGrad()
        return Tensor(shape: shape, dtype: dtype, storage: g)
    }

    /// Pointer to the gradient storage, created zero-filled on first use. Backward rules add
    /// into it; the dtype must match `S`.
    @inline(__always)
    public func gradData<S: TensorScalar>(_: S.Type) -> UnsafeMutablePointer<S> {
        precondition(S.dtype == dtype)
        if gradStorage == nil {
            gradStorage = Buffer(byteCount: count * dtype.byteSize)
            zeroFill(gradStorage!)
        } else {
            clearStaleGrad()
        }
        return gradStorage!.pointer(S.self)
    }

    /// For a backward rule that can write its contribution instead of adding it (a product
    /// with beta 0 rather than 1, a copy rather than a sum): the gradient storage, and
    /// whether it already holds a gradient to add to. When `accumulate` is false the storage
    /// holds garbage, and the rule must write every element, since it is then taken as
    /// written. This saves zero-filling the memory and reading it back.
    @inline(__always)
    public func gradForWriting<S: TensorScalar>(_: S.Type) -> (pointer: UnsafeMutablePointer<S>, accumulate: Bool) {
        precondition(S.dtype == dtype)
        var accumulate = true
        if gradStorage == nil {
            gradStorage = Buffer(byteCount: count * dtype.byteSize)
            accumulate = false
        } else if gradIsStale {
            gradIsStale = false
            accumulate = false
        }
        return (gradStorage!.pointer(S.self), accumulate)
    }

    /// Makes `source`'s gradient this tensor's own, without a copy, if this tensor has none
    /// yet (returns false otherwise). For a backward rule whose input gradient equals its
    /// output gradient element for element (a reshape): the output's gradient is dropped
    /// right after its rule runs, so nothing else sees the shared memory.
    func adoptGrad(of source: Tensor) -> Bool {
        guard gradStorage == nil, let g = source.gradStorage, g.byteCount == count * dtype.byteSize,
              source.dtype == dtype, !source.gradIsStale else { return false }
        gradStorage = g
        return true
    }

    private func clearStaleGrad() {
        guard gradIsStale, let g = gradStorage else { return }
        zeroFill(g)
        gradIsStale = false
    }

    /// Clears the gradient to zero, keeping its memory, as parameters want. Takes no time:
    /// the memory is marked stale, and the first write (or read) of it zeroes or overwrites it.
    public func zeroGrad() {
        if gradStorage != nil { gradIsStale = true }
    }

    /// Drops the gradient and its memory.
    public func clearGrad() { gradStorage = nil; gradIsStale = false }

    /// Keeps this tensor's gradient in `memory` from now on: `count` elements of its dtype
    /// that the caller keeps alive as long as the tensor (data-parallel ranks on one host put
    /// their gradients where the other ranks can read them). What the memory holds counts as
    /// zeros until the first write, as after `zeroGrad()`.
    public func placeGrad(at memory: UnsafeMutableRawPointer) {
        gradStorage = Buffer(external: memory, byteCount: count * dtype.byteSize)
        gradIsStale = true
    }

    /// Writes the zeros a stale gradient (`zeroGrad()`, `placeGrad`) stands for into its
    /// memory, for readers that read the memory rather than the tensor.
    public func settleGrad() { clearStaleGrad() }

    /// Backpropagates from this tensor. A scalar (one element) is seeded with 1; otherwise
    /// pass `seed`, the gradient of some loss with respect to this tensor.
    ///
    /// Afterwards the graph below is freed (saved activations return to the pool) and the
    /// gradients of intermediate tensors are dropped; leaves keep theirs, accumulated.
    public func backward(seed: Tensor? = nil) {
        backward(seed: seed, afterEachNode: nil)
    }

    /// `backward(seed:)`, calling `afterEachNode` after each node of the tape has run (and
    /// once before the first) with the leaves (tensors needing gradients that no op made,
    /// such as parameters) whose gradient no node left to run adds to: each leaf the graph
    /// reaches is passed exactly once, in the order the nodes run (the same order every time
    /// for the same graph). Data-parallel training starts sending a parameter's gradient
    /// there, while the rest of the backward pass runs.
    public func backward(seed: Tensor? = nil, afterEachNode: ((_ finalLeaves: [Tensor]) -> Void)?) {
        precondition(requiresGrad, "backward() on a tensor that does not require gradients")
        if let seed {
            precondition(seed.shape == shape && seed.dtype == dtype,
                         "seed \(seed.shape) \(seed.dtype) does not match \(shape) \(dtype)")
            switch dtype {
            case .float32: addInto(gradData(Float.self), seed.data(Float.self), count)
            case .float64: addInto(gradData(Double.self), seed.data(Double.self), count)
            }
        } else {
            precondition(count == 1, "backward() without a seed needs a scalar, got shape \(shape)")
            switch dtype {
            case .float32: gradData(Float.self)[0] += 1
            case .float64: gradData(Double.self)[0] += 1
            }
        }
        // Collect every node reachable from here, then run them newest first.
        var tape: [Tensor] = []
        var seen = Set<ObjectIdentifier>()
        var stack: [Tensor] = [self]
        while let t = stack.popLast() {
            guard let node = t.node, seen.insert(ObjectIdentifier(t)).inserted else { continue }
            tape.append(t)
            for input in node.inputs where input.requiresGrad { stack.append(input) }
        }
        tape.sort { $0.node!.sequence > $1.node!.sequence }
        // For the hook: the leaves each node is the last to add into (a leaf no node reads,
        // the seeded tensor itself, is final before the first).
        var finalAfter: [[Tensor]] = []
        if afterEachNode != nil {
            var last: [ObjectIdentifier: Int] = [:], leaves: [Tensor] = []
            for (i, t) in tape.enumerated() {
                for input in t.node!.inputs where input.requiresGrad && input.node == nil {
                    if last.updateValue(i, forKey: ObjectIdentifier(input)) == nil { leaves.append(input) }
                }
            }
            finalAfter = Array(repeating: [], count: tape.count)
            for leaf in leaves { finalAfter[last[ObjectIdentifier(leaf)] ?? 0].append(leaf) }
            afterEachNode?(node == nil ? [self] : [])
        }
        for (i, t) in tape.enumerated() {
            let node = t.node!
            if t.gradStorage != nil { OpProfile.measure("backward", node.op) { node.backward(t) } }
            t.node = nil
            t.gradStorage = nil
            t.gradIsStale = false
            afterEachNode?(finalAfter.isEmpty ? [] : finalAfter[i])
        }
    }
}

/// Zeroes a buffer, a large one over the workers (whole 4 KiB pages each).
func zeroFill(_ buffer: Buffer) {
    let pages = (buffer.byteCount + 4095) / 4096, raw = buffer.raw, bytes = buffer.byteCount
    Parallel.forRanges(pages, grain: 256, alignment: 1) { range in
        let lo = range.lowerBound * 4096, hi = Swift.min(bytes, range.upperBound * 4096)
        (raw + lo).initializeMemory(as: UInt8.self, repeating: 0, count: hi - lo)
    }
}

@inline(__always)
func addInto<S: TensorScalar>(_ dst: UnsafeMutablePointer<S>, _ src: UnsafePointer<S>, _ n: Int) {
    for i in 0..<n { dst[i] += src[i] }
}

// The gradient exchange overlapped with the backward pass, for ranks without a shared-memory
// window (several hosts). During the last micro-batch's backward pass, as soon as a
// parameter's gradient is final, a rank that does not own it starts sending it to its owner,
// and the owner starts receiving every other rank's copy; the transfers move on between the
// backward's ops. After the pass each owner waits for its parameters' copies and sums them
// in rank order, in place, over its workers: the order the shared-memory window adds in, so
// both routes give the same bits. Each rank sends (N-1)/N of the gradients and receives its
// share from each of the others, as a reduce-scatter does, without copying them first.
import Blocks
import Foundation
import Tensor

/// The owners' receive buffers, kept from step to step: for each parameter a rank owns, one
/// copy of its gradient per other rank.
final class ReceiveBuffers {
    private var buffers: [Int: (pointer: UnsafeMutablePointer<Float>, capacity: Int)] = [:]

    /// Parameter `index`'s buffer, of at least `count` floats.
    func buffer(_ index: Int, count: Int) -> UnsafeMutablePointer<Float> {
        if let b = buffers[index], b.capacity >= count { return b.pointer }
        buffers[index]?.pointer.deallocate()
        let pointer = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(1, count))
        buffers[index] = (pointer, count)
        return pointer
    }

    deinit { buffers.values.forEach { $0.pointer.deallocate() } }
}

/// One step's exchange, fed the leaves the backward pass has finished.
final class OverlappedExchange {
    private let world: any Collectives
    private let parameters: [Parameter]
    private let owners: [Int]
    private let indexOf: [ObjectIdentifier: Int]
    private let buffers: ReceiveBuffers
    private var started: [Bool]
    /// Transfers in flight: sends, and each owned parameter's receives (rank order, less this
    /// rank's own), with the parameters in the order started.
    private var sends: [Int] = [], receives: [(parameter: Int, handles: [Int])] = []
    private var movedOn = 0
    /// Seconds this rank spent on the exchange (starting, moving on, waiting, summing): what
    /// of it the backward pass did not hide.
    private(set) var exposedSeconds = 0.0

    /// The tags of the transfers are 1 + the parameter's index, at most this (the largest
    /// tag every MPI library takes): fewer parameters than this, or no overlap.
    static let largestTag = 32767

    init(world: any Collectives, parameters: [Parameter], owners: [Int], buffers: ReceiveBuffers) {
        precondition(parameters.count < OverlappedExchange.largestTag, "more parameters than MPI's tags can tell apart")
        self.world = world; self.parameters = parameters; self.owners = owners; self.buffers = buffers
        var indexOf: [ObjectIdentifier: Int] = [:]
        for (i, p) in parameters.enumerated() { indexOf[ObjectIdentifier(p.tensor)] = i }
        self.indexOf = indexOf
        started = Array(repeating: false, count: parameters.count)
    }

    /// The leaves the backward pass has just finished: each parameter's transfers start; those
    /// in flight move on.
    func finished(_ leaves: [Tensor]) {
        let t0 = clockNow()
        defer { exposedSeconds += seconds(since: t0) }
        for leaf in leaves {
            if let i = indexOf[ObjectIdentifier(leaf)] { start(i) }
        }
        // Asking after the oldest unfinished send (or a receive) moves every transfer on.
        while movedOn < sends.count && world.isDone(sends[movedOn]) { movedOn += 1 }
        if movedOn == sends.count, let first = receives.first?.handles.first { _ = world.isDone(first) }
    }

    /// After the backward pass: starts the transfers of the parameters it did not reach (in
    /// their order), waits for them all and sums each owned gradient over the ranks.
    func complete() {
        let t0 = clockNow()
        defer { exposedSeconds += seconds(since: t0) }
        for i in parameters.indices { start(i) }
        for handle in sends { world.finish(handle) }
        let me = world.rank, ranks = world.size
        for (i, handles) in receives {
            handles.forEach(world.finish)
            guard let grad = parameters[i].tensor.grad else { continue }
            let count = grad.count, own = grad.data(Float.self), copies = buffers.buffer(i, count: count * (ranks - 1))
            // Rank r's copy: this rank's gradient, or its slot among the others'.
            let sources = (0..<ranks).map { r in r == me ? own : copies + (r < me ? r : r - 1) * count }
            Parallel.forRanges(count, grain: 1 << 14) { part in
                for j in part {
                    var s = sources[0][j]
                    for r in 1..<ranks { s += sources[r][j] }
                    own[j] = s
                }
            }
        }
    }

    /// Starts parameter `i`'s transfers, once: its gradient to its owner, or, on the owner,
    /// every other rank's copy into its buffer. A parameter without a gradient has none on
    /// any rank (the ranks run one graph) and moves nothing.
    private func start(_ i: Int) {
        guard !started[i] else { return }
        started[i] = true
        guard let grad = parameters[i].tensor.grad else { return }
        let owner = owners[i], me = world.rank, count = grad.count, tag = 1 + i
        if owner != me {
            sends.append(world.startSend(grad.data(Float.self), count: count, to: owner, tag: tag))
            return
        }
        let copies = buffers.buffer(i, count: count * (world.size - 1))
        let handles = (0..<world.size).filter { $0 != me }.enumerated().map { slot, r in
            world.startReceive(copies + slot * count, count: count, from: r, tag: tag)
        }
        receives.append((i, handles))
    }
}

/// The weights the owners have just updated, on their way to the other ranks while the next
/// forward pass begins (ranks without a shared-memory window). Each owner starts sending
/// each of its parameters to every other rank straight from the parameter, every other rank
/// starts receiving it straight into its copy; the forward pass waits for each stage's
/// parameters before reading them (`GPT.arriving`), and moves the transfers on between its
/// ops. The values are the owners' to the bit, as `MPI_Allgatherv`'s are. Used by the
/// thread that runs the steps alone (the forward pass's hook runs on it).
final class ArrivingParameters: ArrivingWeights, @unchecked Sendable {
    private let world: any Collectives
    /// Receives by stage and sends, each in the order started; per stage the receives
    /// finished so far (in order), and the sends known to be over (finished at `settle`,
    /// before this rank may write its parameters again).
    private var receives: [[Int]], sends: [Int] = []
    private var finishedReceives: [Int], sendsOver = 0
    /// Seconds this rank spent on the transfers (starting, moving on, waiting): what of them
    /// the forward pass did not hide.
    private(set) var exposedSeconds = 0.0
    /// The part of it spent starting them (the step that updated the weights).
    private(set) var startSeconds = 0.0

    /// Starts the transfers of `parameters` (`stages[i]`: the forward stage that reads
    /// parameter i; `owners[i]`: its owner), in their order, under tags 1 + the index.
    init(world: any Collectives, parameters: [Parameter], owners: [Int], stages: [Int]) {
        precondition(parameters.count < OverlappedExchange.largestTag, "more parameters than MPI's tags can tell apart")
        self.world = world
        receives = Array(repeating: [], count: (stages.max() ?? 0) + 1)
        finishedReceives = Array(repeating: 0, count: receives.count)
        let t0 = clockNow()
        let me = world.rank
        for (i, p) in parameters.enumerated() {
            let data = p.tensor.data(Float.self), count = p.tensor.count, owner = owners[i], tag = 1 + i
            if owner == me {
                for r in 0..<world.size where r != me { sends.append(world.startSend(data, count: count, to: r, tag: tag)) }
            } else {
                receives[stages[i]].append(world.startReceive(data, count: count, from: owner, tag: tag))
            }
        }
        moveOn()
        startSeconds = seconds(since: t0)
        exposedSeconds = startSeconds
    }

    /// Asks after the oldest transfers not known to be over (which moves every transfer on;
    /// a receive found over is finished), between the forward pass's ops.
    func moveOn() {
        let t0 = clockNow()
        defer { exposedSeconds += seconds(since: t0) }
        while sendsOver < sends.count && world.isDone(sends[sendsOver]) { sendsOver += 1 }
        if let s = finishedReceives.indices.first(where: { finishedReceives[$0] < receives[$0].count }) {
            while let handle = nextReceive(s), world.isDone(handle) { finishReceive(s) }
        }
    }

    func awaitStage(_ stage: Int) {
        guard stage < receives.count else { return }
        let t0 = clockNow()
        defer { exposedSeconds += seconds(since: t0) }
        for s in 0...stage {
            while nextReceive(s) != nil { finishReceive(s) }
        }
    }

    /// Stage `s`'s first receive not yet finished, if any.
    private func nextReceive(_ s: Int) -> Int? {
        finishedReceives[s] < receives[s].count ? receives[s][finishedReceives[s]] : nil
    }

    /// Finishes stage `s`'s next receive (waiting for it if it is not over).
    private func finishReceive(_ s: Int) {
        if let handle = nextReceive(s) { world.finish(handle) }
        finishedReceives[s] += 1
    }

    func settle() {
        awaitStage(receives.count - 1)
        let t0 = clockNow()
        defer { exposedSeconds += seconds(since: t0) }
        // Every handle is finished once: those `isDone` found over are freed here too.
        for handle in sends { world.finish(handle) }
        sends = []
    }
}

// One optimisation step (SPEC §2): gradient accumulation over micro-batches, a check for
// NaN/Inf that names the tensor, global-norm clipping, and the Muon + AdamW updates with
// their schedules. The training command (issue 5) drives it.
import Blocks
import Foundation
import Tensor

/// NaN or Inf where training cannot go on; names the step and the tensor.
public struct NonFiniteError: UserFacingError {
    public let step: Int, tensor: String
    public var description: String { "step \(step): \(tensor) is NaN or Inf; stopping (the last checkpoint is kept)" }
}

/// Now on the monotonic clock the step's timings are read from, in nanoseconds.
func clockNow() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

/// Seconds since `start`, a `clockNow()` reading.
func seconds(since start: UInt64) -> Double { Double(clockNow() - start) * 1e-9 }

public final class Trainer {
    public let model: GPT
    public let settings: OptimizerSettings
    public let muon: Muon
    public let adam: AdamW
    /// Parameter names in the order of `muon.parameters` and `adam.parameters`.
    public let muonNames: [String], adamNames: [String]
    /// The LR multiplier of the last step.
    public private(set) var lastLRMultiplier = 1.0
    /// The factor the last step's gradients were clipped by (1: not clipped).
    public private(set) var lastClipFactor: Float = 1
    /// Seconds the last step spent summing gradients onto their owners (when overlapped
    /// with the backward pass, the time the pass did not hide: copies, starts and waits),
    /// and sharing the updated weights (0 in one process).
    public private(set) var lastReduceSeconds = 0.0, lastBroadcastSeconds = 0.0
    /// Seconds of the last step this rank waited, before each exchange, for the slowest rank
    /// to finish its backward pass or its optimiser update (not counted in the two above).
    public private(set) var lastWaitSeconds = 0.0
    /// Steps taken; the schedules use it. Set when resuming.
    public var step = 0
    /// The ranks of a data-parallel run: each parameter is owned by one rank, which alone
    /// receives the sum of its gradients, keeps its optimiser state and updates it, then
    /// shares the new values (nil: one process).
    public let world: (any Collectives)?
    /// The owning rank of each Muon matrix and each AdamW parameter (all 0 in one process),
    /// and of each of the model's parameters in its order.
    public let muonOwners: [Int], adamOwners: [Int], parameterOwners: [Int]

    /// Groups the model's parameters by their optimiser group. The embedding and head rates
    /// are scaled by (C/768)^-½ as nanochat does.
    /// `bucketFloats` sets the size of an exchange's rounds (any size gives the same sums).
    public init(model: GPT, settings: OptimizerSettings = OptimizerSettings(), world: (any Collectives)? = nil,
                bucketFloats: Int = Trainer.defaultBucketFloats) {
        self.model = model
        self.bucketFloats = Swift.max(1, bucketFloats)
        self.settings = settings
        self.world = world
        let scale = pow(Double(model.config.nEmbd) / 768, -0.5)
        var matrices: [Tensor] = [], adamParams: [Tensor] = [], lrs: [Double] = []
        var muonNames: [String] = [], adamNames: [String] = []
        for p in model.parameters.parameters {
            switch p.group {
            case .muonMatrix where settings.muonForMatrices: matrices.append(p.tensor); muonNames.append(p.name); continue
            case .muonMatrix: lrs.append(settings.matrixLR)
            case .adamEmbedding: lrs.append(settings.embeddingLR * scale)
            case .adamHead: lrs.append(settings.unembeddingLR * scale)
            case .adamMambaScalar: lrs.append(settings.mambaLR)
            }
            adamParams.append(p.tensor)
            adamNames.append(p.name)
        }
        self.muonNames = muonNames
        self.adamNames = adamNames
        // Sharding: the Muon matrices are spread by the work of their Newton–Schulz
        // iterations (rows · cols · min(rows, cols)), which every rank waits for before the
        // broadcast; the AdamW parameters by their size.
        let ranks = world?.size ?? 1, rank = world?.rank ?? 0
        muonOwners = World.owners(sizes: matrices.map { m in
            let rows = m.shape[0], cols = m.count / Swift.max(1, rows)
            return rows * cols * Swift.min(rows, cols)
        }, ranks: ranks)
        adamOwners = World.owners(sizes: adamParams.map(\.count), ranks: ranks)
        let owners = muonOwners + adamOwners
        var ownerOf: [ObjectIdentifier: Int] = [:]
        for (t, o) in zip(matrices + adamParams, owners) { ownerOf[ObjectIdentifier(t)] = o }
        parameterOwners = model.parameters.parameters.map { ownerOf[ObjectIdentifier($0.tensor)] ?? 0 }
        muon = Muon(parameters: matrices, lr: settings.matrixLR, owned: muonOwners.map { $0 == rank })
        adam = AdamW(parameters: adamParams, lrs: lrs, betas: settings.adamBetas, epsilon: settings.adamEpsilon,
                     weightDecay: settings.weightDecay, owned: adamOwners.map { $0 == rank })
    }

    /// Floats per round of an exchange: each round moves up to this many floats, an equal
    /// share from each owner (the default: 16 MiB).
    public let bucketFloats: Int
    public static let defaultBucketFloats = 1 << 22
    private var bucket: [Float] = [], received: [Float] = []
    /// Whether the last step's exchange ran during the backward pass (and its updated
    /// weights go to the other ranks during the next forward pass).
    public private(set) var lastOverlapped = false
    private let receiveBuffers = ReceiveBuffers()
    /// The updated weights still on their way (across hosts, between a step and the next
    /// forward pass); also `model.arriving` until settled.
    private var arrivingParameters: ArrivingParameters?
    private lazy var parameterStages = model.parameterStages

    /// Waits until every rank's updated weights are in place and this rank's have gone out:
    /// call before anything but the next step reads or writes the parameters outside a
    /// forward pass (a checkpoint does it itself), and on every rank before the last step's
    /// weights are needed or the run ends.
    public func settleWeights() { model.settleWeights() }

    /// One exchange over the owners' runs of floats (owner r's tensors' contents laid end to
    /// end): in rounds, each taking the next `bucketFloats / ranks` floats (or fewer, at the
    /// end) of every owner's run; `body` gets the ranges of each run in the round and where
    /// each owner's range starts in a bucket that holds them end to end. The rounds depend
    /// only on the sizes and the rank count.
    func rounds(_ runs: [[Tensor]], _ body: (_ ranges: [Range<Int>], _ starts: [Int]) -> Void) {
        let share = Swift.max(1, bucketFloats / Swift.max(1, runs.count))
        let totals = runs.map { $0.reduce(0) { $0 + $1.count } }
        var offsets = [Int](repeating: 0, count: runs.count)
        while zip(offsets, totals).contains(where: { $0 < $1 }) {
            let ranges = runs.indices.map { offsets[$0]..<Swift.min(totals[$0], offsets[$0] + share) }
            var starts = [0]
            for r in ranges.dropLast() { starts.append(starts[starts.count - 1] + r.count) }
            body(ranges, starts)
            offsets = ranges.map(\.upperBound)
        }
    }

    /// Runs `body` with this process's bucket and a buffer of one owner's share of a round.
    func withBuffers(ranks: Int, _ body: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) -> Void) {
        let share = Swift.max(1, bucketFloats / ranks)
        if bucket.count < share * ranks { bucket = [Float](repeating: 0, count: share * ranks) }
        if received.count < share { received = [Float](repeating: 0, count: share) }
        bucket.withUnsafeMutableBufferPointer { b in received.withUnsafeMutableBufferPointer { r in
            if let bucket = b.baseAddress, let received = r.baseAddress { body(bucket, received) }
        } }
    }

    /// Copies between floats `range` of the tensors' contents laid end to end and `buffer`
    /// (into the tensors when `toTensors`), over the workers.
    static func copy(_ tensors: [Tensor], _ range: Range<Int>, _ buffer: UnsafeMutablePointer<Float>, toTensors: Bool) {
        var at = 0
        for t in tensors {
            defer { at += t.count }
            let lo = Swift.max(range.lowerBound, at), hi = Swift.min(range.upperBound, at + t.count)
            guard lo < hi else { if at >= range.upperBound { break } else { continue } }
            let data = t.data(Float.self) + (lo - at), place = buffer + (lo - range.lowerBound)
            Parallel.forRanges(hi - lo, grain: 1 << 16) { part in
                if toTensors {
                    (data + part.lowerBound).update(from: place + part.lowerBound, count: part.count)
                } else {
                    (place + part.lowerBound).update(from: data + part.lowerBound, count: part.count)
                }
            }
        }
    }

    /// Waits until every rank gets here; returns the seconds waited.
    func waitForAll(_ world: any Collectives) -> Double {
        let t0 = clockNow()
        OpProfile.measure("distributed", "waiting for the slowest rank") { world.barrier() }
        return seconds(since: t0)
    }

    /// How the ranks exchange gradients and weights, for the log (collective: every rank
    /// asks at the same point).
    public var exchangeRoute: String {
        guard let world else { return "none (one process)" }
        if !windowsPlaced { placeInWindows(world) }
        return world.nodeWindow(floats: bucketFloats) != nil
            ? weightsShared
            ? "shared memory (every rank on this host; each owner adds the gradients where the ranks' backward passes leave them and updates the one copy of its weights every rank reads)"
            : gradientPeers != nil
            ? "shared memory (every rank on this host; each owner adds the gradients where the ranks' backward passes leave them; the weights copied in rounds)"
            : "shared memory (every rank on this host; the gradients and weights copied in rounds)"
            : overlapsExchange
            ? "each gradient sent to its owner during the backward pass, each updated weight to every rank during the next forward pass (MPI_Isend, MPI_Irecv; no shared-memory window across the ranks: several hosts)"
            : "MPI_Reduce_scatter and MPI_Allgatherv (no shared-memory window across the ranks: several hosts)"
    }

    /// Whether the gradients go to their owners during the last micro-batch's backward pass,
    /// and the updated weights to every rank during the next forward pass: across hosts (no
    /// shared-memory window), unless `overlap_exchange` is off or the parameters outnumber
    /// the transfers' tags (1 + each one's index). Collective, as `nodeWindow` is.
    var overlapsExchange: Bool {
        guard let world, settings.overlapExchange,
              model.parameters.parameters.count < OverlappedExchange.largestTag else { return false }
        return world.nodeWindow(floats: bucketFloats) == nil
    }

    /// Every rank's gradients, in memory all ranks read (each parameter's at the same place
    /// in every rank's part), once placed there; nil when they are in each rank's own memory.
    private var gradientPeers: [UnsafeMutablePointer<Float>]?
    /// Where each parameter's gradient starts in a rank's part of the gradient window.
    private var gradientOffsets: [Int] = []
    /// Whether every rank's parameters are one copy in shared memory, each owner's in its part
    /// of the weight window (then sharing updated weights is a barrier).
    private var weightsShared = false
    private var windowsPlaced = false
    /// What ranks on one host keep in windows all of them read: both the gradients and the
    /// weights (default); with `NANOCHAT_WINDOWS=gradients` the gradients alone, with
    /// `NANOCHAT_WINDOWS=buckets` neither, both copied through the exchange's buckets (for
    /// comparisons).
    static let windowsWanted = ProcessInfo.processInfo.environment["NANOCHAT_WINDOWS"] ?? "all"

    /// On one host, puts every parameter's gradient into a window all ranks share, so that
    /// each owner adds the other ranks' gradients where the backward passes left them, and
    /// the weights into another, one copy for all ranks that each owner updates in place.
    /// Collective: every rank calls it once, at its first step or when asked for
    /// `exchangeRoute`, whichever comes first. Nothing is placed across hosts, for a tensor
    /// that is not float32, or when a window cannot be had (MPI refuses the memory); the
    /// exchange's buckets carry what is not.
    func placeInWindows(_ world: any Collectives) {
        windowsPlaced = true
        let params = model.parameters.parameters.map(\.tensor)
        guard Trainer.windowsWanted != "buckets", world.nodeWindow(floats: bucketFloats) != nil,
              params.allSatisfy({ $0.dtype == .float32 }) else { return }
        let (offsets, total) = Trainer.placesEndToEnd(params.map(\.count), parts: [Int](repeating: 0, count: params.count), of: 1)
        guard total[0] > 0, let peers = world.nodeWindow(.gradients, floats: total[0]) else { return }
        for (p, offset) in zip(params, offsets) { p.placeGrad(at: UnsafeMutableRawPointer(peers[world.rank] + offset)) }
        gradientPeers = peers
        gradientOffsets = offsets

        guard Trainer.windowsWanted != "gradients" else { return }
        // Each owner's parameters end to end in its part; the owner copies its values in.
        let (places, at) = Trainer.placesEndToEnd(params.map(\.count), parts: parameterOwners, of: world.size)
        guard let weights = world.nodeWindow(.weights, floats: Swift.max(16, at.max() ?? 0)) else { return }
        for (i, p) in params.enumerated() {
            let owner = parameterOwners[i]
            p.placeData(at: UnsafeMutableRawPointer(weights[owner] + places[i]), copyingValues: owner == world.rank)
        }
        world.syncWindow()   // every owner's values are in before any rank reads them
        weightsShared = true
    }

    /// Where each of tensors of `counts` floats starts when each part's tensors (`parts[i]`,
    /// in 0..<`partCount`) lie end to end, each 64-byte aligned; and each part's floats.
    static func placesEndToEnd(_ counts: [Int], parts: [Int], of partCount: Int) -> (places: [Int], totals: [Int]) {
        var totals = [Int](repeating: 0, count: partCount), places: [Int] = []
        for (n, part) in zip(counts, parts) {
            places.append(totals[part])
            totals[part] += (n + 15) / 16 * 16
        }
        return (places, totals)
    }

    /// Sums each parameter's gradient over the ranks onto its owner: each rank sends about
    /// (N-1)/N of the gradients and sums its share. On one host the ranks' gradients are in
    /// shared memory (in place, or copied into buckets a round at a time) and each owner adds
    /// its share of all of them itself, in rank order, over its workers; across hosts
    /// MPI_Reduce_scatter does it.
    func sumGradientsOntoOwners(_ world: any Collectives) {
        let params = model.parameters.parameters
        let me = world.rank
        if let peers = gradientPeers {
            // Gradients no op wrote this step hold their zeros in memory before others read it.
            for p in params { p.tensor.settleGrad() }
            world.syncWindow()
            // This owner's gradients, each the sum of every rank's in rank order. The next
            // backward pass writes the gradients again only after the barrier before the
            // weights' all-gather, which every owner reaches once its sums are done.
            for i in params.indices where parameterOwners[i] == me {
                let at = gradientOffsets[i]
                Parallel.forRanges(params[i].tensor.count, grain: 1 << 14) { part in
                    Trainer.sumInRankOrder(peers.map { $0 + at + part.lowerBound }, count: part.count, into: peers[me] + at + part.lowerBound)
                }
            }
            return
        }
        let runs = (0..<world.size).map { owner in
            params.indices.filter { parameterOwners[$0] == owner }.compactMap { params[$0].tensor.grad }
        }
        if let peers = world.nodeWindow(floats: bucketFloats) {
            withBuffers(ranks: world.size) { _, received in
                rounds(runs) { ranges, starts in
                    for r in runs.indices { Trainer.copy(runs[r], ranges[r], peers[me] + starts[r], toTensors: false) }
                    world.syncWindow()
                    // This owner's part of every rank's bucket, summed in rank order.
                    let at = starts[me]
                    Parallel.forRanges(ranges[me].count, grain: 1 << 14) { part in
                        let sum = received + part.lowerBound
                        sum.update(from: peers[0] + at + part.lowerBound, count: part.count)
                        for peer in peers.dropFirst() {
                            let other = peer + at + part.lowerBound
                            for i in 0..<part.count { sum[i] += other[i] }
                        }
                    }
                    Trainer.copy(runs[me], ranges[me], received, toTensors: true)
                    world.syncWindow()   // every rank has read the buckets before they are refilled
                }
            }
            return
        }
        withBuffers(ranks: world.size) { bucket, received in
            rounds(runs) { ranges, starts in
                for r in runs.indices { Trainer.copy(runs[r], ranges[r], bucket + starts[r], toTensors: false) }
                world.sumScattered(bucket, into: received, counts: ranges.map { Int32($0.count) })
                Trainer.copy(runs[me], ranges[me], received, toTensors: true)
            }
        }
    }

    /// Writes `sources[0][i] + sources[1][i] + …`, added in that order, to `destination[i]`
    /// for i in 0..<count; `destination` may be one of the sources.
    static func sumInRankOrder(_ sources: [UnsafeMutablePointer<Float>], count: Int, into destination: UnsafeMutablePointer<Float>) {
        let piece = 2048   // a piece of the sum stays in L1 while every source is added
        withUnsafeTemporaryAllocation(of: Float.self, capacity: piece) { scratch in
            guard let sum = scratch.baseAddress, let first = sources.first else { return }
            var start = 0
            while start < count {
                let n = Swift.min(piece, count - start)
                sum.update(from: first + start, count: n)
                for source in sources.dropFirst() {
                    let other = source + start
                    for i in 0..<n { sum[i] += other[i] }
                }
                (destination + start).update(from: sum, count: n)
                start += n
            }
        }
    }

    /// Gives every rank the parameters their owners have just updated (all-gather: through
    /// the shared window on one host, MPI_Allgatherv across hosts).
    func shareUpdatedWeights(_ world: any Collectives) {
        if weightsShared {
            world.syncWindow()   // every owner's update is in before any rank reads it
            return
        }
        let all = Array(zip(muon.parameters + adam.parameters, muonOwners + adamOwners))
        let runs = (0..<world.size).map { owner in all.filter { $0.1 == owner }.map(\.0) }
        let me = world.rank
        if let peers = world.nodeWindow(floats: bucketFloats) {
            rounds(runs) { ranges, starts in
                Trainer.copy(runs[me], ranges[me], peers[me] + starts[me], toTensors: false)
                world.syncWindow()
                for r in runs.indices where r != me { Trainer.copy(runs[r], ranges[r], peers[r] + starts[r], toTensors: true) }
                world.syncWindow()
            }
            return
        }
        withBuffers(ranks: world.size) { bucket, _ in
            rounds(runs) { ranges, starts in
                Trainer.copy(runs[me], ranges[me], bucket + starts[me], toTensors: false)
                world.gather(bucket, counts: ranges.map { Int32($0.count) })
                for r in runs.indices where r != me { Trainer.copy(runs[r], ranges[r], bucket + starts[r], toTensors: true) }
            }
        }
    }

    /// Bytes of optimiser state this process holds.
    public var stateBytes: Int { (muon.buffers + adam.m + adam.v).reduce(0) { $0 + $1.count * 4 } }

    /// Forward and backward over the micro-batches (gradients averaged), clipping, one
    /// update. Returns the mean loss. `totalSteps` sets the LR schedule's horizon.
    @discardableResult
    public func step(_ microBatches: [(x: IndexTensor, y: IndexTensor)], totalSteps: Int) throws -> Double {
        precondition(!microBatches.isEmpty)
        let params = model.parameters.parameters
        if let world, !windowsPlaced { placeInWindows(world) }
        for p in params { p.tensor.zeroGrad() }
        var lossSum = 0.0
        // The mean over every micro-batch of the step, on all ranks.
        let weight = 1 / Double(microBatches.count * (world?.size ?? 1))
        // Across hosts, the last micro-batch's backward pass starts the exchange as it goes.
        var overlapped: OverlappedExchange? = nil
        if let world, overlapsExchange {
            overlapped = OverlappedExchange(world: world, parameters: params, owners: parameterOwners, buffers: receiveBuffers)
        }
        // The last step's weights may still be arriving: the first forward pass waits for
        // each layer's and moves the transfers on between its ops.
        let arriving = arrivingParameters
        arrivingParameters = nil
        for (k, (x, y)) in microBatches.enumerated() {
            OpProfile.mark()
            let output = model.arriving != nil && arriving != nil
                ? GradMode.betweenOps(calling: { arriving?.moveOn() }) { model.loss(x, targets: y) }
                : model.loss(x, targets: y)
            let loss = scale(output, weight)
            let value = loss.item
            guard value.isFinite else { throw NonFiniteError(step: step, tensor: "loss") }
            lossSum += value
            if let overlapped, k == microBatches.count - 1 {
                loss.backward(afterEachNode: { overlapped.finished($0) })
            } else {
                loss.backward()
            }
        }
        // Every rank's weights are in place; this rank's own have gone out before it updates them.
        settleWeights()
        lastBroadcastSeconds = arriving.map { $0.exposedSeconds - $0.startSeconds } ?? 0
        let rank = world?.rank ?? 0
        lastOverlapped = overlapped != nil
        if let world, let overlapped {
            // No wait for the slowest rank before it: the transfers wait for it instead.
            lastWaitSeconds = 0
            OpProfile.measure("distributed", "gradient reduce-scatter") { overlapped.complete() }
            lossSum = world.sum([lossSum])[0]
            lastReduceSeconds = overlapped.exposedSeconds
        } else if let world {
            // Each parameter's gradient is summed onto the rank that owns it (the only one
            // that reads it).
            lastWaitSeconds = waitForAll(world)
            let t0 = clockNow()
            OpProfile.measure("distributed", "gradient reduce-scatter") { sumGradientsOntoOwners(world) }
            lossSum = world.sum([lossSum])[0]
            lastReduceSeconds = seconds(since: t0)
        }
        var squares = 0.0, nonFinite: String? = nil
        OpProfile.measure("optimizer", "gradient norm") {
            for (i, p) in params.enumerated() where parameterOwners[i] == rank {
                guard let g = p.tensor.grad else { continue }
                let s = squaredNorm(g.data(Float.self), count: g.count)
                if !s.isFinite && nonFinite == nil { nonFinite = p.name }
                squares += s
            }
        }
        if let world { squares = world.sum([squares])[0] }   // the global norm, on every rank
        guard squares.isFinite else {
            throw NonFiniteError(step: step, tensor: nonFinite.map { "gradient of \($0)" } ?? "a gradient another rank owns")
        }
        // Clipping scales every gradient by one factor; the optimisers read the gradients
        // times it (the same bits as scaling them in place, without another pass over them).
        let norm = squares.squareRoot()
        let clip = settings.gradClip
        let clipFactor: Float = clip > 0 && norm > clip ? Float(clip / norm) : 1
        let lrm = Schedule.lrMultiplier(step: step, total: totalSteps, warmupRatio: settings.warmupRatio,
                                        warmdownRatio: settings.warmdownRatio, finalFraction: settings.finalLRFraction)
        lastLRMultiplier = lrm
        lastClipFactor = clipFactor
        OpProfile.measure("optimizer", "Muon") {
            muon.update(lrMultiplier: lrm, momentum: Schedule.muonMomentum(step: step), gradScale: clipFactor)
        }
        OpProfile.measure("optimizer", "AdamW") { adam.update(lrMultiplier: lrm, gradScale: clipFactor) }
        if let world, overlapped != nil {
            // Sent during the next forward pass: no wait for the slowest rank here either.
            let share = OpProfile.measure("distributed", "weight all-gather") {
                ArrivingParameters(world: world, parameters: params, owners: parameterOwners, stages: parameterStages)
            }
            arrivingParameters = share
            model.arriving = share
            lastBroadcastSeconds += share.exposedSeconds
        } else if let world {
            lastWaitSeconds += waitForAll(world)
            let t0 = clockNow()
            defer { lastBroadcastSeconds = seconds(since: t0) }
            OpProfile.measure("distributed", "weight all-gather") { shareUpdatedWeights(world) }
        }
        step += 1
        return lossSum
    }
}

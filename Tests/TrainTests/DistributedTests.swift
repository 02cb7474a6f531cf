// The data-parallel step over ranks as threads of one process (InProcessWorld): gradients
// summed onto their owners, the global norm and its clipping, the owners' updates shared
// back, and the optimiser state gathered to rank 0, against one process taking every
// micro-batch itself. Both routes: a window every rank reads (one host; the gradients read
// where the backward pass leaves them, or copied through buckets) and the reduce-scatter /
// all-gather collectives (several hosts).
import Foundation
import Testing
import Tensor
import Blocks
import Train
import Evaluation
import Tokenizer

@Suite struct DistributedTests {
    static let config = ModelConfig(sequenceLen: 8, vocabSize: 16, nLayer: 2, nHead: 2, nKVHead: 2, nEmbd: 32,
                                    blockPattern: [.transformer, .mamba])

    /// Micro-batch `i` of step `s`: rank r of N takes micro-batch r.
    static func batch(_ s: Int, _ i: Int) -> (x: IndexTensor, y: IndexTensor) {
        func tokens(_ mul: Int, _ add: Int) -> IndexTensor {
            IndexTensor(shape: [2, 8], values: (0..<16).map { j -> Int32 in Int32((j * mul + add) % 16) })
        }
        return (tokens(5 + 2 * i, s + i), tokens(3 + i, 7 * s + 2 * i))
    }

    /// What each rank (or the one process) ends with after `steps` steps.
    struct Outcome: Sendable {
        var losses: [Double] = [], clips: [Float] = [], weights: [String: [Float]] = [:]
        /// Whether the last step's exchange ran during the backward pass, before the first step
        /// (none: false) and after each.
        var overlapped: [Bool] = []
        /// The token losses of a forward pass after the last step, taken before the weights
        /// are settled (across hosts some may still be arriving).
        var next: [Float] = []
        /// Transfers this rank started and never finished, once its weights are settled.
        var unfinished = 0
        /// How the ranks exchanged gradients and weights (the trainer's words).
        var route = ""
        /// The same, asked before the first step, if it was.
        var routeAtStart: String?
    }

    /// The forward pass after the last step, then the weights once settled.
    static func outcome(_ trainer: Trainer, steps: Int) -> Outcome {
        var o = Outcome()
        let (x, y) = batch(steps, 0)
        o.next = trainer.model.tokenLosses(x, targets: y)
        trainer.settleWeights()
        for p in trainer.model.parameters.parameters { o.weights[p.name] = p.tensor.floats }
        return o
    }

    /// One process, all micro-batches of each step.
    static func single(ranks: Int, steps: Int, clip: Double) throws -> Outcome {
        let trainer = Trainer(model: try GPT(config: config, seed: 4), settings: clipping(clip))
        var losses: [Double] = [], clips: [Float] = []
        for s in 0..<steps {
            losses.append(try trainer.step((0..<ranks).map { batch(s, $0) }, totalSteps: 10))
            clips.append(trainer.lastClipFactor)
        }
        var o = outcome(trainer, steps: steps)
        o.losses = losses; o.clips = clips
        return o
    }

    /// N ranks, each one micro-batch per step; every rank's outcome.
    /// `microBatches` per rank per step (rank r takes micro-batches r·m ..< (r+1)·m); across
    /// hosts (no window) the exchange overlaps the backward pass unless `overlap` is false.
    /// On one host (`window`), the gradients and weights go through the exchange's buckets
    /// unless `inPlace`. With `routeFirst` the route is asked before the first step, as a
    /// training run's log does (which then places the windows, rather than the first step).
    static func distributed(ranks: Int, steps: Int, clip: Double, window: Bool, microBatches m: Int = 1,
                            overlap: Bool = true, inPlace: Bool = true, routeFirst: Bool = false,
                            bucketFloats: Int = Trainer.defaultBucketFloats) throws -> [Outcome] {
        try InProcessWorld.run(InProcessWorld.group(size: ranks, sharedWindow: window, inPlace: inPlace)) { world in
            var settings = clipping(clip)
            settings.overlapExchange = overlap
            let trainer = Trainer(model: try GPT(config: config, seed: 4), settings: settings, world: world,
                                  bucketFloats: bucketFloats)
            var losses: [Double] = [], clips: [Float] = [], overlapped = [trainer.lastOverlapped]
            let routeAtStart = routeFirst ? trainer.exchangeRoute : nil
            for s in 0..<steps {
                losses.append(try trainer.step((0..<m).map { batch(s, world.rank * m + $0) }, totalSteps: 10))
                clips.append(trainer.lastClipFactor)
                overlapped.append(trainer.lastOverlapped)
            }
            var o = outcome(trainer, steps: steps)
            o.losses = losses; o.clips = clips; o.overlapped = overlapped
            o.unfinished = world.unfinishedTransfers
            o.route = trainer.exchangeRoute
            o.routeAtStart = routeAtStart
            return o
        }
    }

    static func relativeGap(_ a: [Float], _ b: [Float]) -> Double {
        let scale = Swift.max(1e-6, a.map { Double(Swift.abs($0)) }.max() ?? 0)
        return zip(a, b).map { Double(Swift.abs($0 - $1)) }.max().map { $0 / scale } ?? 0
    }

    /// N ranks (2, 3, 4; both routes) end where one process taking all N micro-batches ends:
    /// the same losses and clipping factors (clipping engaged) and weights to 1e-5 relative,
    /// and every rank holds the same weights, bit for bit.
    @Test(arguments: [(2, true), (2, false), (3, true), (4, false)])
    func ranksEqualOneProcess(_ ranks: Int, _ window: Bool) throws {
        let steps = 3, clip = 0.05
        let one = try Self.single(ranks: ranks, steps: steps, clip: clip)
        #expect(one.clips.allSatisfy { $0 < 0.5 }, "the test needs clipping to happen: \(one.clips)")
        let all = try Self.distributed(ranks: ranks, steps: steps, clip: clip, window: window)
        for (r, o) in all.enumerated() {
            for (a, b) in zip(o.losses, one.losses) { #expect(Swift.abs(a - b) <= 1e-6 * Swift.abs(b), "rank \(r) loss \(a) vs \(b)") }
            for (a, b) in zip(o.clips, one.clips) { #expect(Swift.abs(a - b) <= 1e-5 * b, "rank \(r) clip \(a) vs \(b)") }
            for (name, w) in one.weights {
                let gap = Self.relativeGap(w, o.weights[name] ?? [])
                #expect(gap < 1e-5, "\(ranks) ranks (window \(window)), rank \(r), \(name): \(gap)")
                #expect(o.weights[name] == all[0].weights[name], "rank \(r) and rank 0 hold different \(name)")
            }
        }
    }

    /// The same ranks give the same bits, run after run, on either route.
    @Test func sameRanksSameBits() throws {
        for window in [true, false] {
            let a = try Self.distributed(ranks: 3, steps: 2, clip: 0.05, window: window)
            let b = try Self.distributed(ranks: 3, steps: 2, clip: 0.05, window: window)
            #expect(a[0].weights == b[0].weights && a[0].losses == b[0].losses, "window \(window)")
        }
    }

    /// The shared window is the size asked for first: every rank gets the same memory again
    /// for that size, nil for any other (as MPI's `World` answers), and a group without one
    /// always nil (the route across hosts).
    @Test func theWindowKeepsItsFirstSize() throws {
        let shared = try InProcessWorld.run(InProcessWorld.group(size: 2, sharedWindow: true)) { world in
            let first = world.nodeWindow(floats: 64).map { $0.map { UInt(bitPattern: $0) } }
            let again = world.nodeWindow(floats: 64).map { $0.map { UInt(bitPattern: $0) } }
            return (first, again, world.nodeWindow(floats: 65) == nil, world.nodeWindow(floats: 32) == nil)
        }
        for (rank, r) in shared.enumerated() {
            #expect(r.0?.count == 2 && r.0 == r.1 && r.0 == shared[0].0, "rank \(rank): \(String(describing: r.0)), then \(String(describing: r.1))")
            #expect(r.2 && r.3, "rank \(rank): a window of another size was handed out")
        }
        let apart = try InProcessWorld.run(InProcessWorld.group(size: 2, sharedWindow: false)) { world in
            world.nodeWindow(floats: 64) == nil
        }
        #expect(apart == [true, true])
    }

    /// Across hosts each gradient goes to its owner during the backward pass, and the owner
    /// adds the copies in rank order: the same bits as the shared-memory window (which adds
    /// in that order too) and as the reduce-scatter after the pass (which does here, in
    /// threads). Two micro-batches per rank as well (only the last one's pass sends, the
    /// first's gradients already in), on 3 ranks; and the same sums as one process.
    /// The exchanges that go in rounds (through the shared window's buckets, or summed and
    /// scattered across hosts) give the same bits in many small rounds, each cutting tensors
    /// part-way, as in the one round that holds the test model whole.
    @Test(arguments: [(true, false), (false, false)])
    func smallRoundsGiveTheBitsOfOneRound(_ window: Bool, _ inPlace: Bool) throws {
        let whole = try Self.distributed(ranks: 3, steps: 2, clip: 0.05, window: window, overlap: false, inPlace: inPlace)
        let parameters = try GPT(config: Self.config, seed: 4).parameters.parameters.reduce(0) { $0 + $1.tensor.count }
        #expect(parameters < Trainer.defaultBucketFloats / 3, "the default holds the model in one round")
        for bucket in [3 * 997, 3 * 4096 + 2] {
            let rounds = try Self.distributed(ranks: 3, steps: 2, clip: 0.05, window: window, overlap: false,
                                              inPlace: inPlace, bucketFloats: bucket)
            #expect(rounds.allSatisfy { $0.route.contains(window ? "gradients and weights copied in rounds" : "MPI_Reduce_scatter") }, "\(rounds.map(\.route))")
            for (r, (a, b)) in zip(whole, rounds).enumerated() {
                #expect(a.losses == b.losses && a.clips == b.clips, "rank \(r), bucket \(bucket)")
                let differ = a.weights.keys.sorted().filter { a.weights[$0] != b.weights[$0] }
                #expect(differ.isEmpty && a.weights.count == b.weights.count, "rank \(r), bucket \(bucket): other \(differ)")
            }
        }
    }

    /// The fake world's receive started before its message is sent is not done (the trainer
    /// would read a buffer still empty); once the message is sent it is done, holding it.
    @Test func aReceiveIsDoneOnlyOnceItsMessageHasCome() throws {
        let seen = try InProcessWorld.run(InProcessWorld.group(size: 2, sharedWindow: false)) { world -> [Float] in
            let buffer = UnsafeMutablePointer<Float>.allocate(capacity: 3)
            defer { buffer.deallocate() }
            if world.rank == 0 {
                buffer.update(from: [1.5, -2, 4], count: 3)
                world.barrier()
                world.finish(world.startSend(buffer, count: 3, to: 1, tag: 5))
                world.barrier()
                return []
            }
            buffer.update(repeating: 0, count: 3)
            let handle = world.startReceive(buffer, count: 3, from: 0, tag: 5)
            let early = world.isDone(handle)
            world.barrier()
            world.barrier()
            let late = world.isDone(handle)
            return [early ? 1 : 0, late ? 1 : 0, Float(world.unfinishedTransfers)] + Array(UnsafeBufferPointer(start: buffer, count: 3))
        }
        #expect(seen[1] == [0, 1, 0, 1.5, -2, 4], "not done, done, transfers left, then the message")
    }

    /// A rank waiting for a message never sent fails the run after its timeout, naming that
    /// rank (and not the one that finished), instead of hanging the suite.
    @Test func aDeadlockFailsNamingTheRanksStillWaiting() throws {
        do {
            _ = try InProcessWorld.run(InProcessWorld.group(size: 3, sharedWindow: false), timeoutSeconds: 0.5) { world in
                guard world.rank != 1 else { return }
                var one: Float = 0
                world.receive(&one, count: 1, from: 1)   // rank 1 sends nothing
            }
            Issue.record("a run whose ranks 0 and 2 wait forever returned")
        } catch let stalled as InProcessWorld.Stalled {
            #expect(stalled.running == [0, 2])
            #expect(stalled.description.contains("ranks 0, 2 still running after 0.5 s"), "\(stalled)")
        }
    }

    /// Over a slow link (every message between ranks received 0.2 s after it is sent), each
    /// step's figures say where the time went: the gradients' exchange overlapping the
    /// backward pass, and from the second step the weights arriving during the forward pass,
    /// each wait most of the latency; no figure is negative or longer than its step.
    @Test func aSlowLinksWaitsAreCounted() throws {
        let latency = 0.2
        let figures = try InProcessWorld.run(InProcessWorld.group(size: 2, sharedWindow: false, latency: latency)) { world in
            var settings = clipping(0.05)
            settings.overlapExchange = true
            let trainer = Trainer(model: try GPT(config: Self.config, seed: 4), settings: settings, world: world)
            var steps: [(wall: Double, wait: Double, reduce: Double, gather: Double)] = []
            for s in 0..<2 {
                let t0 = DispatchTime.now().uptimeNanoseconds
                _ = try trainer.step([Self.batch(s, world.rank)], totalSteps: 10)
                let wall = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
                steps.append((wall, trainer.lastWaitSeconds, trainer.lastReduceSeconds, trainer.lastBroadcastSeconds))
            }
            trainer.settleWeights()
            return steps
        }
        for (rank, steps) in figures.enumerated() {
            for (s, f) in steps.enumerated() {
                let said = "rank \(rank), step \(s): \(f)"
                #expect(f.wait == 0, "\(said): a wait for the slowest rank where the transfers wait instead")
                #expect(f.reduce >= latency / 2 && f.reduce <= f.wall, "\(said)")
                #expect(f.gather >= (s == 0 ? 0 : latency / 2) && f.gather <= f.wall, "\(said)")
                #expect(f.reduce + f.gather <= f.wall, "\(said)")
            }
        }
    }

    @Test func theExchangeDuringTheBackwardPassGivesTheSumsAfterIt() throws {
        for m in [1, 2] {
            let after = try Self.distributed(ranks: 3, steps: 3, clip: 0.05, window: false, microBatches: m, overlap: false)
            let during = try Self.distributed(ranks: 3, steps: 3, clip: 0.05, window: false, microBatches: m)
            // With 2 micro-batches the route is asked first, placing the windows before any step.
            let window = try Self.distributed(ranks: 3, steps: 3, clip: 0.05, window: true, microBatches: m, routeFirst: m == 2)
            let buckets = try Self.distributed(ranks: 3, steps: 3, clip: 0.05, window: true, microBatches: m, inPlace: false)
            #expect(window.allSatisfy { $0.route.contains("each owner adds the gradients where") && $0.route.contains("the one copy of its weights") },
                    "\(window.map(\.route))")
            #expect(buckets.allSatisfy { $0.route.contains("the gradients and weights copied in rounds") }, "\(buckets.map(\.route))")
            #expect(window.allSatisfy { $0.routeAtStart == (m == 2 ? $0.route : nil) }, "\(window.map(\.routeAtStart))")
            #expect(after[0].overlapped == [false, false, false, false] && window[0].overlapped == [false, false, false, false])
            // In place or through buckets, the window adds the gradients in the same order.
            for (r, (a, b)) in zip(window, buckets).enumerated() {
                #expect(a.losses == b.losses && a.clips == b.clips && a.weights == b.weights, "\(m) micro-batches, rank \(r): in place against buckets")
            }
            #expect(during.allSatisfy { $0.overlapped == [false, true, true, true] })
            // Every transfer started was finished: each step settled the last one's weights.
            #expect(during.map(\.unfinished) == [0, 0, 0])
            for (r, (a, d)) in zip(window, during).enumerated() {
                #expect(a.losses == d.losses && a.clips == d.clips, "\(m) micro-batches, rank \(r), the window: \(a.losses) vs \(d.losses)")
                // The forward pass after the last step waited for the weights still arriving.
                #expect(!a.next.isEmpty && a.next == d.next, "\(m) micro-batches, rank \(r): the next forward pass")
                let differ = a.weights.keys.sorted().filter { a.weights[$0] != d.weights[$0] }
                #expect(differ.isEmpty, "\(m) micro-batches, rank \(r): other weights than the window's in \(differ)")
            }
            for (r, (a, d)) in zip(after, during).enumerated() {
                #expect(a.losses == d.losses && a.clips == d.clips, "\(m) micro-batches, rank \(r): \(a.losses) vs \(d.losses)")
                let differ = a.weights.keys.sorted().filter { a.weights[$0] != d.weights[$0] }
                #expect(differ.isEmpty, "\(m) micro-batches, rank \(r): other weights in \(differ)")
            }
            // One process adds its 3·m micro-batches' gradients one after another; with two a
            // rank, the ranks add pairs and then the pairs: sums that differ in the last bit,
            // which Muon's Newton-Schulz iteration magnifies for small singular values. With
            // one a rank the weights come out the same here (gap 0); with two, the largest gap
            // on every OpenBLAS core (Prescott to Cooperlake) is 0.9-1.1e-5 (a zero-initialised
            // projection). Leaving one of the six micro-batches out moves every tensor by 8e-4
            // or more: the bound for two lies between the two.
            let one = try Self.single(ranks: 3 * m, steps: 3, clip: 0.05)
            for (name, w) in one.weights {
                let gap = Self.relativeGap(w, during[0].weights[name] ?? [])
                #expect(gap < (m == 1 ? 1e-5 : 1e-4), "\(m) micro-batches, \(name): \(gap)")
            }
        }
    }

    /// The optimiser state, sharded over the ranks, is gathered into the file one process
    /// writes: the same tensors, to 1e-5 relative.
    @Test func shardedOptimizerStateIsGatheredToRankZero() throws {
        let dir = NSTemporaryDirectory() + "nanochat-dist-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let alone = Trainer(model: try GPT(config: Self.config, seed: 4), settings: clipping(0.05))
        for s in 0..<2 { try alone.step((0..<3).map { Self.batch(s, $0) }, totalSteps: 10) }
        try OptimizerState.save(alone, to: dir + "/one.safetensors")
        _ = try InProcessWorld.run(InProcessWorld.group(size: 3, sharedWindow: true)) { world in
            let trainer = Trainer(model: try GPT(config: Self.config, seed: 4), settings: clipping(0.05), world: world)
            for s in 0..<2 { try trainer.step([Self.batch(s, world.rank)], totalSteps: 10) }
            try OptimizerState.save(trainer, to: dir + "/ranks.safetensors")
        }
        let one = Dictionary(try Safetensors.read(dir + "/one.safetensors").tensors, uniquingKeysWith: { a, _ in a })
        let ranks = Dictionary(try Safetensors.read(dir + "/ranks.safetensors").tensors, uniquingKeysWith: { a, _ in a })
        #expect(Set(one.keys) == Set(ranks.keys) && one.count > 10)
        for (name, t) in one {
            let gap = Self.relativeGap(t.floats, ranks[name]?.floats ?? [])
            #expect(gap < 1e-4, "\(name): \(gap)")
        }
    }

    /// A chat benchmark over 3 ranks (each every third batch of 5, the outcomes added) gives
    /// every rank every problem's outcome as one process scores them.
    @Test func chatBenchmarkOverRanksGivesOneProcessesOutcomes() throws {
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().path
        let tok = try Tokenizer.load(from: fixtures + "/TokenizerTests/Fixtures/tokenizer")
        let problems = ChatTaskFile.shuffled(try ChatTaskFile.problems(.arcEasy, path: fixtures + "/EvaluationTests/Fixtures/chat_tasks/arc.jsonl"))
        let modelDir = fixtures + "/EvaluationTests/Fixtures/model"
        let alone = try Precision.with(.float32) {
            try Evaluator.chatBenchmark(.arcEasy, problems: problems, model: try Checkpoint.load(from: modelDir).model, tokenizer: tok,
                                        batchSize: 5, maxTokens: 8, sandbox: nil, world: nil)
        }
        let ranks = try InProcessWorld.run(InProcessWorld.group(size: 3, sharedWindow: false)) { world in
            try Precision.with(.float32) {
                try Evaluator.chatBenchmark(.arcEasy, problems: problems, model: try Checkpoint.load(from: modelDir).model, tokenizer: tok,
                                            batchSize: 5, maxTokens: 8, sandbox: nil, world: world)
            }
        }
        #expect(alone.total == 24 && alone.correct > 0)
        for (r, result) in ranks.enumerated() {
            #expect(result.outcomes == alone.outcomes, "rank \(r)")
            // Rank r scored batches r, r + 3, ...: problems 5r ..< 5r + 5 and so on.
            #expect(result.problems.map(\.index) == (0..<24).filter { ($0 / 5) % 3 == r }, "rank \(r)")
        }
    }

    /// CORE through `Evaluator.core`, alone and over 3 ranks (each every third example, the
    /// counts added): each task's count is that of its examples scored correct one by one,
    /// the last one included (the number of examples per task is chosen so that the model
    /// gets some task's last example right).
    @Test func coreOverRanksScoresEveryExample() throws {
        let tests = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        let tok = try Tokenizer.load(from: tests.appendingPathComponent("TokenizerTests/Fixtures/tokenizer").path)
        let modelDir = tests.appendingPathComponent("EvaluationTests/Fixtures/model").path
        let bundle = try CoreBundle(directory: tests.deletingLastPathComponent().appendingPathComponent("data/core_shakespeare").path)
        try Precision.with(.float32) {
            let model = try Checkpoint.load(from: modelDir).model
            var found: (sets: [(task: CoreTask, examples: [CoreExample])], wanted: [Int])?
            for perTask in 6...16 where found == nil {
                var sets: [(task: CoreTask, examples: [CoreExample])] = [], wanted: [Int] = [], lastRight = false
                for task in bundle.tasks {
                    let examples = CorePrompts.evaluationOrder(try bundle.examples(of: task), maxPerTask: perTask)
                    let right = try examples.indices.map { try CoreScoring.evaluate(examples, index: $0, task: task, model: model, tokenizer: tok).correct }
                    sets.append((task, examples))
                    wanted.append(right.filter { $0 }.count)
                    lastRight = lastRight || right.last == true
                }
                if lastRight { found = (sets, wanted) }
            }
            let (sets, wanted) = try #require(found, "no task's last example is scored right at 6 to 16 examples per task")
            let alone = try Evaluator.core(sets, model: model, tokenizer: tok, world: nil)
            #expect(alone.map(\.correct) == wanted && alone.map(\.examples) == sets.map(\.examples.count))
            let ranks = try InProcessWorld.run(InProcessWorld.group(size: 3, sharedWindow: false)) { world in
                try Precision.with(.float32) {
                    try Evaluator.core(sets, model: try Checkpoint.load(from: modelDir).model, tokenizer: tok, world: world)
                }
            }
            for (r, results) in ranks.enumerated() { #expect(results.map(\.correct) == wanted, "rank \(r)") }
        }
    }

    /// A whole training run over 2 ranks (2 micro-batches each) against one process taking
    /// the 4 micro-batches of each step, on a corpus short enough that the run goes round it
    /// (a new epoch mid-step), in fp32: the same losses step by step and val bpb, to rounding; only
    /// rank 0 writes, and its checkpoints hold the one process's weights and data position.
    @Test func aTrainingRunOverRanksIsTheOneProcesssRun() throws {
        let (data, tok) = try preparedData(characters: 6_000)
        let one = scratchPath("one"), two = scratchPath("two")
        let extra = "total_batch_size = 256\nnum_iterations = 10\neval_every = 5\nsave_every = 5\ndtype = \"float32\""
        func settings(_ out: String, ranks: Int) throws -> TrainSettings {
            try TrainSettings.resolve(try runConfig(data: data, output: out, extra: extra), path: "test.py", vocabSize: tok.vocabSize,
                                      worldSize: ranks)
        }
        func losses(_ lines: [String]) -> [Double] {
            lines.compactMap { line in
                guard line.hasPrefix("step "), let r = line.range(of: "| loss: ") else { return nil }
                return Double(line[r.upperBound...].prefix { $0 != " " })
            }
        }
        var alone: [String] = []
        let single = try TrainingRun(settings: try settings(one, ranks: 1), tokenizer: tok, resume: nil) { alone.append($0) }.run()
        let s2 = try settings(two, ranks: 2)
        #expect(s2.accumulation == 2)
        final class Logs: @unchecked Sendable {
            let lock = NSLock()
            var lines: [[String]] = [[], []]
            let settings: TrainSettings
            init(_ settings: TrainSettings) { self.settings = settings }
        }
        let logs = Logs(s2)
        let runs = try InProcessWorld.run(InProcessWorld.group(size: 2, sharedWindow: true)) { world in
            try TrainingRun(settings: logs.settings, tokenizer: tok, resume: nil, world: world) { line in
                logs.lock.withLock { logs.lines[world.rank].append(line) }
            }.run()
        }
        let expected = losses(alone)
        #expect(expected.count == 10)
        for r in 0..<2 {
            let got = losses(logs.lines[r])
            if r == 0 {
                #expect(got.count == 10)
                // A rank's step line ends with its exchange's times.
                let steps = logs.lines[r].filter { $0.hasPrefix("step ") && $0.contains("| loss: ") }
                #expect(steps.count == 10 && steps.allSatisfy { $0.contains(" | wait: ") && $0.contains(" | reduce-scatter: ") && $0.hasSuffix("ms") }, "\(steps.first ?? "")")
            }
            for (a, b) in zip(got, expected) { #expect(abs(a - b) <= 2e-6 * b, "rank \(r): loss \(a), one process \(b)") }
            #expect(runs[r].evaluations.map(\.step) == single.evaluations.map(\.step))
            for (a, b) in zip(runs[r].evaluations, single.evaluations) { #expect(abs(a.bpb - b.bpb) <= 1e-5 * b.bpb, "rank \(r) val bpb") }
        }
        #expect(Checkpoint.steps(in: two) == [5, 10] && Checkpoint.steps(in: one) == [5, 10])
        let a = try Checkpoint.load(from: one, step: 10).model, b = try Checkpoint.load(from: two, step: 10).model
        for (p, q) in zip(a.parameters.parameters, b.parameters.parameters) {
            // Ten AdamW steps grow rounding in the small Mamba scalars (the sums of the ranks'
            // gradients are taken in another order) to about 1e-4; wrong batches are far off.
            #expect(Self.relativeGap(p.tensor.floats, q.tensor.floats) <= 1e-3, "\(p.name)")
        }
        struct Resume: Decodable {
            struct State: Decodable { let train_position: Int, epoch: Int }
            let resume: State
        }
        func state(_ dir: String) throws -> Resume.State {
            try JSONDecoder().decode(Resume.self, from: Data(contentsOf: URL(fileURLWithPath: Checkpoint.metaPath(dir, step: 10)))).resume
        }
        let (x, y) = (try state(one), try state(two))
        #expect(x.epoch >= 1 && x.epoch == y.epoch && x.train_position == y.train_position, "\(x) \(y)")
    }
}

// Deterministic multi-threading: work is cut into contiguous ranges, each computed by one
// worker with the same code as the serial loop, and the workers take the ranges in turn.
// Where a cut falls changes no bit (elementwise work, whole rows, or partial results cut by
// the problem's size alone and combined in a fixed order), and no float is ever combined
// across workers in an order that depends on scheduling.
import Dispatch
import Foundation
import Synchronization

public enum Parallel {
    private static let threads = Atomic<Int>(defaultThreadCount())

    // OpenBLAS stays on one thread, set as CHost loads: `gemm` splits products over
    // our workers itself. Its own idle threads spin (sched_yield) for a long while after each
    // call, taking the cores from our elementwise kernels: measured as 10-18% of a train step.
    private static func defaultThreadCount() -> Int {
        ProcessInfo.processInfo.activeProcessorCount
    }

    /// Set inside `serially`: this thread's kernels run on it alone.
    @TaskLocal static var serialHere = false

    /// Set inside `withThreadCount`: the count for this task (or thread) alone.
    @TaskLocal static var localThreads: Int? = nil

    /// Worker threads used by the kernels (and by `gemm`, which splits products over them):
    /// 1 inside `serially`, n inside `withThreadCount(n)`, else the process-wide count.
    public static var threadCount: Int { serialHere ? 1 : localThreads ?? threads.load(ordering: .relaxed) }

    /// Runs `body` with the kernels it calls on this task (or thread) using `n` workers,
    /// leaving the process-wide count, and every other task's, as they are: how tests that
    /// compare thread counts run side by side.
    public static func withThreadCount<R>(_ n: Int, _ body: () throws -> R) rethrows -> R {
        precondition(n >= 1, "thread count must be at least 1")
        return try $localThreads.withValue(n, operation: body)
    }

    /// Runs `body` with every kernel it calls on this thread alone (`threadCount` reads 1).
    /// The bits are those of any thread count: kernels cut their work by the problem's size.
    public static func serially<R>(_ body: () throws -> R) rethrows -> R {
        try $serialHere.withValue(true, operation: body)
    }

    /// Runs `body(i)` for every `i` in `0..<count`, each item whole on one worker with its
    /// kernels run `serially`; a worker that finishes takes the next item in order. For
    /// independent items of uneven cost whose kernels split poorly (Muon's matrices): items
    /// run side by side instead of each being cut across the workers. Which worker runs an
    /// item changes no bit of it.
    public static func forEachItem(_ count: Int, _ body: (Int) -> Void) {
        let workers = Swift.min(threadCount, count)
        if workers <= 1 {
            for i in 0..<count { body(i) }
            return
        }
        takeInTurn(count, workers: workers) { i in serially { body(i) } }
    }

    /// Runs `body(i)` for `i` in `0..<count` on `workers` workers, each taking the next
    /// unclaimed `i` when it finishes one: a worker slowed by another process on its core
    /// takes fewer, so it delays the whole by about its share, not by its slowness.
    @usableFromInline
    static func takeInTurn(_ count: Int, workers: Int, _ body: (Int) -> Void) {
        let next = Atomic<Int>(0)
        // Callers give disjoint work per `i`, so sharing the body (and the buffers it
        // captures) across the workers is safe.
        WorkerPool.shared.run(workers: workers) { _ in
            while true {
                let i = next.wrappingAdd(1, ordering: .relaxed).oldValue
                if i >= count { break }
                body(i)
            }
        }
    }

    /// Sets the process-wide worker count.
    public static func setThreadCount(_ n: Int) {
        precondition(n >= 1, "thread count must be at least 1")
        threads.store(n, ordering: .relaxed)
    }

    /// Splits `0..<count` into contiguous ranges of at least `grain` items, each boundary a
    /// multiple of `alignment`, and runs `body` on each range; runs inline when one range
    /// suffices or one worker is set. There are up to `piecesPerWorker` ranges per worker,
    /// taken in turn (`takeInTurn`), so a core another process is using slows the call by
    /// its share. `body` must give the same bits for any such cut (elementwise work, or rows
    /// each computed whole): where a cut falls then changes nothing.
    @inlinable @inline(__always)
    public static func forRanges(
        _ count: Int, grain: Int = 1 << 14, alignment: Int = 16,
        _ body: (Range<Int>) -> Void
    ) {
        let workers = threadCount
        let pieces = Swift.min(workers * piecesPerWorker, Swift.max(1, count / Swift.max(grain, 1)))
        if pieces <= 1 || workers <= 1 {
            body(0..<count)
            return
        }
        let step = (count + pieces - 1) / pieces
        let aligned = (step + alignment - 1) / alignment * alignment
        let ranges = (count + aligned - 1) / aligned
        takeInTurn(ranges, workers: Swift.min(workers, ranges)) { p in
            let lo = p * aligned
            body(lo..<Swift.min(count, lo + aligned))
        }
    }

    /// Ranges per worker in `forRanges`: 4 keeps a busy core's delay to about a quarter of a
    /// worker's share, at one atomic increment and one closure call per range.
    public static let piecesPerWorker = 4

    /// The most worker threads a run may ask for.
    public static let maxThreads = 1024

    /// Runs `body(i)` for every `i` in `0..<count`, in contiguous blocks of items the workers
    /// take in turn (`forRanges`). For independent items of similar cost (rows, heads).
    @inlinable @inline(__always)
    public static func forEach(_ count: Int, _ body: (Int) -> Void) {
        forRanges(count, grain: 1, alignment: 1) { range in
            for i in range { body(i) }
        }
    }
}

/// Hands a value to concurrentPerform's workers; callers guarantee they touch disjoint data.
@usableFromInline
struct UncheckedSendable<T>: @unchecked Sendable {
    @usableFromInline let value: T
    @inlinable init(_ value: T) { self.value = value }
}

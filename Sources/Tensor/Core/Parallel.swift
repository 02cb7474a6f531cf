// Deterministic multi-threading: work is cut into fixed contiguous ranges that depend only
// on the problem size and the thread count, and each range is computed by one worker with
// the same code as the serial loop. No float is ever combined across workers in an order
// that depends on scheduling.
import CBLAS
import Dispatch
import Foundation
import Synchronization

public enum Parallel {
    private static let threads = Atomic<Int>(defaultThreadCount())

    private static func defaultThreadCount() -> Int {
        // OpenBLAS stays on one thread: `gemm` splits products over our workers itself. Its
        // own idle threads spin (sched_yield) for a long while after each call, taking the
        // cores from our elementwise kernels: measured as 10-18% of a train step.
        openblas_set_num_threads(1)
        return ProcessInfo.processInfo.activeProcessorCount
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
        let next = Atomic<Int>(0)
        withoutActuallyEscaping(body) { body in
            let shared = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: workers) { _ in
                serially {
                    while true {
                        let i = next.wrappingAdd(1, ordering: .relaxed).oldValue
                        if i >= count { break }
                        shared.value(i)
                    }
                }
            }
        }
    }

    /// Sets the process-wide worker count.
    public static func setThreadCount(_ n: Int) {
        precondition(n >= 1, "thread count must be at least 1")
        threads.store(n, ordering: .relaxed)
    }

    /// Splits `0..<count` into at most `threadCount` contiguous ranges of at least `grain`
    /// items, each boundary a multiple of `alignment`, and runs `body` on each range.
    /// Runs inline when one range suffices.
    @inlinable @inline(__always)
    public static func forRanges(
        _ count: Int, grain: Int = 1 << 14, alignment: Int = 16,
        _ body: (Range<Int>) -> Void
    ) {
        let parts = Swift.min(threadCount, Swift.max(1, count / Swift.max(grain, 1)))
        if parts <= 1 {
            body(0..<count)
            return
        }
        let step = (count + parts - 1) / parts
        let aligned = (step + alignment - 1) / alignment * alignment
        // concurrentPerform wants a @Sendable closure; the ranges are disjoint, so sharing
        // the body (and the buffers it captures) across its workers is safe.
        withoutActuallyEscaping(body) { body in
            let shared = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: parts) { p in
                let lo = Swift.min(count, p * aligned)
                let hi = Swift.min(count, lo + aligned)
                if lo < hi { shared.value(lo..<hi) }
            }
        }
    }

    /// Runs `body(i)` for every `i` in `0..<count`, items spread over the workers in fixed
    /// contiguous blocks. For independent items of similar cost (rows, heads).
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

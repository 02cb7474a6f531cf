// Parallel.serially and forEachItem: kernels inside run on their own thread with the bits of
// any thread count, and every item runs exactly once, on no more threads than it is given.
import Foundation
import Synchronization
import Testing
import Tensor

extension TensorTests {
    @Suite struct ParallelTests {
        @Test func seriallyMeansOneThreadInsideOnly() {
            withThreads(2) {
                #expect(Parallel.threadCount == 2)
                Parallel.serially { #expect(Parallel.threadCount == 1) }
                #expect(Parallel.threadCount == 2)
            }
        }

        @Test func forEachItemRunsEveryItemOnceSerially() {
            let count = 37
            let hits = UnsafeMutablePointer<Int>.allocate(capacity: count)
            hits.initialize(repeating: 0, count: count)
            defer { hits.deallocate() }
            let insideThreads = Atomic<Int>(0)
            withThreads(2) {
                Parallel.forEachItem(count) { i in
                    hits[i] += 1   // each index belongs to one item
                    insideThreads.wrappingAdd(Parallel.threadCount, ordering: .relaxed)
                }
            }
            #expect((0..<count).allSatisfy { hits[$0] == 1 }, "\((0..<count).map { hits[$0] })")
            #expect(insideThreads.load(ordering: .relaxed) == count, "items saw more than one thread")
        }

        /// forEachItem and forRanges run on at most the thread count they are given
        /// (`--threads`), however many items or ranges there are: 24 that take a while each,
        /// on 2 threads.
        @Test func itemsAndRangesKeepToTheThreadCount() {
            func threadsUsed(_ run: (@escaping () -> Void) -> Void) -> Int {
                let threads = Mutex<Set<UInt>>([])
                withThreads(2) {
                    run {
                        threads.withLock { _ = $0.insert(UInt(pthread_self())) }
                        usleep(2000)
                    }
                }
                return threads.withLock { $0.count }
            }
            let items = threadsUsed { work in Parallel.forEachItem(24) { _ in work() } }
            let ranges = threadsUsed { work in Parallel.forRanges(24, grain: 1, alignment: 1) { _ in work() } }
            #expect(items >= 1 && items <= 2, "forEachItem: \(items) threads")
            #expect(ranges >= 1 && ranges <= 2, "forRanges: \(ranges) threads")
        }

        /// A product and a Gram matrix big enough to be cut across workers give the same bits
        /// when run serially inside one worker.
        @Test func serialKernelsKeepTheBits() {
            let a = randn([600, 300], seed: 41), b = randn([300, 200], seed: 42)
            func run() -> [UInt32] {
                let c = Tensor(zeros: [600, 200]), gm = Tensor(zeros: [300, 300])
                gemm(m: 600, n: 200, k: 300, a: a.data(Float.self), b: b.data(Float.self), c: c.data(Float.self))
                gram(transpose: true, n: 300, k: 600, a: a.data(Float.self), c: gm.data(Float.self))
                return (c.floats + gm.floats).map(\.bitPattern)
            }
            let split = withThreads(2) { run() }
            let serial = withThreads(2) { Parallel.serially { run() } }
            #expect(split == serial)
        }
    }
}

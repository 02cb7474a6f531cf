// The threads that run the kernels' work: kept alive between ops, each waits for the next
// op by spinning a short while (with the CPU's spin hint) before it sleeps. A train step
// hands out work a thousand times or more; waking sleeping threads for each (libdispatch's
// concurrentPerform) cost tens of microseconds per op on 16 cores, which this pool's spinning
// workers answer in about one.
//
// It changes no bit: which thread runs a piece of work never matters (Parallel's promise).
// One op at a time uses the pool; an op started while it is busy (another thread's, or one
// nested inside a worker's piece) runs on concurrentPerform as before.
import CHost
import Dispatch
import Foundation
import Synchronization

final class WorkerPool: @unchecked Sendable {
    static let shared = WorkerPool()

    /// Whether ops use the pool: `NANOCHAT_WORKERS=dispatch` leaves every op to
    /// concurrentPerform, for comparisons (the bits are the same either way).
    static let enabled = ProcessInfo.processInfo.environment["NANOCHAT_WORKERS"] != "dispatch"

    /// How long an idle worker spins for the next op before it sleeps.
    static let spinNanoseconds: UInt64 = 200_000

    /// How a waiting thread spins: with the CPU's spin hint on every poll (the default), or
    /// with `NANOCHAT_SPIN=yield` flat out, for comparisons. The hint leaves a hyperthread
    /// sibling, or the virtual machine's host core, to the thread still working on the op.
    /// Either way the thread yields its core now and then, for when there are more threads
    /// than cores. No value changes.
    static let pauses = ProcessInfo.processInfo.environment["NANOCHAT_SPIN"] != "yield"

    /// The op in hand: `job(w)` for the workers w in 1...(its worker count - 1), the caller
    /// being worker 0. Written before `generation` moves on. A worker reads it only when the
    /// op needs that worker, so the op cannot have ended (nor the next replaced it) meanwhile.
    private var job: ((Int) -> Void)?
    /// The op's number times 2^16 plus its worker count: a worker learns from one load which
    /// op it is and whether it takes part.
    private let generation = Atomic<UInt64>(0)
    /// Workers of the op in hand still running their part.
    private let pending = Atomic<Int>(0)
    /// Whether an op holds the pool.
    private let busy = Atomic<Bool>(false)

    /// Sleeping workers wait on `wake` under `mutex` for `generation` to move.
    private var mutex = pthread_mutex_t()
    private var wake = pthread_cond_t()
    private var sleepers = 0
    /// Worker threads started so far (they live as long as the process).
    private var started = 0

    private init() {
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&wake, nil)
    }

    /// Whether this thread is one of the pool's workers.
    private static let isWorkerKey: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()
    private static var onWorker: Bool { pthread_getspecific(isWorkerKey) != nil }

    /// Runs `body(w)` for w in 0..<workers, w = 0 on the calling thread, and returns when all
    /// have returned.
    func run(workers: Int, _ body: (Int) -> Void) {
        guard workers > 1 else { body(0); return }
        guard Self.enabled, !Self.onWorker, busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            // Busy, or nested inside a worker's piece: the system's threads.
            withoutActuallyEscaping(body) { body in
                let shared = UncheckedSendable(body)
                DispatchQueue.concurrentPerform(iterations: workers) { shared.value($0) }
            }
            return
        }
        defer { busy.store(false, ordering: .releasing) }
        startWorkers(workers - 1)
        withoutActuallyEscaping(body) { body in
            job = body
            pending.store(workers - 1, ordering: .sequentiallyConsistent)
            let op = (generation.load(ordering: .relaxed) >> 16) &+ 1
            generation.store(op << 16 | UInt64(workers), ordering: .sequentiallyConsistent)
            pthread_mutex_lock(&mutex)
            if sleepers > 0 { pthread_cond_broadcast(&wake) }
            pthread_mutex_unlock(&mutex)
            body(0)
            // The others' parts: spin, giving the core up to anyone waiting for it.
            var spins = 0
            while pending.load(ordering: .acquiring) > 0 {
                spins += 1
                if Self.pauses { nanochat_cpu_relax() }
                if spins > 64 && (!Self.pauses || spins & 63 == 0) { sched_yield() }
            }
            job = nil
        }
    }

    /// Starts workers until there are `count`. Called before the next op is published: each
    /// new worker starts from the op number of now, so it takes the next op whenever its
    /// thread gets going.
    private func startWorkers(_ count: Int) {
        let now = generation.load(ordering: .sequentiallyConsistent)
        while started < count {
            started += 1
            let index = started
            let thread = Thread { [unowned self] in self.work(index, from: now) }
            thread.name = "nanochat worker \(index)"
            thread.stackSize = 8 << 20
            thread.start()
        }
    }

    /// Runs worker `index`'s part of the op in hand. A function of its own, so that the
    /// worker's hold on the closure ends when it returns, before the op counts the part done
    /// (the closure does not outlive the op that lent it).
    @inline(never)
    private func runPart(_ index: Int) {
        job?(index)
    }

    /// A worker's life: wait for the next op (spinning, then sleeping), run its part if the op
    /// asked for this many workers, report it done.
    private func work(_ index: Int, from start: UInt64) {
        pthread_setspecific(Self.isWorkerKey, UnsafeRawPointer(bitPattern: 1))
        var seen = start
        while true {
            var now = generation.load(ordering: .sequentiallyConsistent)
            if now == seen {
                let since = DispatchTime.now().uptimeNanoseconds
                var spins = 0
                while now == seen {
                    spins += 1
                    if spins & 63 == 0 {
                        if DispatchTime.now().uptimeNanoseconds &- since > Self.spinNanoseconds { break }
                        sched_yield()
                    }
                    if Self.pauses { nanochat_cpu_relax() }
                    now = generation.load(ordering: .sequentiallyConsistent)
                }
            }
            if now == seen {
                pthread_mutex_lock(&mutex)
                sleepers += 1
                while generation.load(ordering: .sequentiallyConsistent) == seen { pthread_cond_wait(&wake, &mutex) }
                sleepers -= 1
                pthread_mutex_unlock(&mutex)
                now = generation.load(ordering: .sequentiallyConsistent)
            }
            seen = now
            if index < Int(now & 0xffff) {
                runPart(index)
                pending.wrappingSubtract(1, ordering: .sequentiallyConsistent)
            }
        }
    }
}

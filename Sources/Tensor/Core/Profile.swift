// Where a train step's time goes: wall-clock time per op, in the forward (attributed at
// `record`), in the backward (each node's rule, timed by the tape) and in phases the caller
// names (the optimiser's). Off unless started; when off, each op pays one atomic load.

import Dispatch
import Foundation
import Synchronization

/// Wall-clock time per op while profiling is on, for the train step of a model: which op
/// limits it, and how much time goes to none of them.
///
/// - Forward: every op calls `record` right after computing its output, so the time since
///   the previous op (or since `mark()`) is the op's. Work between two ops that is not an
///   op of its own is therefore counted to the second.
/// - Backward: each node's backward rule, timed on its own.
/// - Other phases: whatever the caller wraps in `measure` (the trainer: the clip norm and
///   each optimiser).
///
/// Ops run on the calling thread (their kernels fan out inside). Each thread that records
/// ops keeps its own clock and phase depth, so two models run side by side (tests in
/// parallel) do not charge each other's time; their entries share the table.
public enum OpProfile {
    /// The time one (phase, op) took over all its calls.
    public struct Entry: Codable, Sendable, Equatable {
        public var phase: String, op: String
        public var seconds: Double, calls: Int
    }

    struct Table {
        var entries: [String: Entry] = [:]
        var order: [String] = []
        /// When profiling started: the clock of a thread that has not recorded an op yet.
        var started: UInt64 = 0
        /// Per thread: when its forward clock last restarted.
        var marks: [pthread_t: UInt64] = [:]
        /// Per thread: open `measure` calls; ops recorded inside one (a backward rule built
        /// from ops) belong to it, not to the forward.
        var depths: [pthread_t: Int] = [:]

        mutating func add(_ phase: String, _ op: String, nanoseconds: UInt64) {
            let key = phase + "\u{0}" + op
            if entries[key] == nil {
                entries[key] = Entry(phase: phase, op: op, seconds: 0, calls: 0)
                order.append(key)
            }
            entries[key]!.seconds += Double(nanoseconds) / 1e9
            entries[key]!.calls += 1
        }
    }

    static let enabled = Atomic<Bool>(false)
    static let table = Mutex(Table())

    /// Whether ops are being timed.
    public static var isEnabled: Bool { enabled.load(ordering: .relaxed) }

    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// Clears the table and starts timing; the forward's clock starts now.
    public static func start() {
        let t = now(), thread = pthread_self()
        table.withLock { $0 = Table(); $0.started = t; $0.marks[thread] = t }
        enabled.store(true, ordering: .relaxed)
    }

    /// Stops timing and returns the entries in the order they first appeared.
    public static func stop() -> [Entry] {
        enabled.store(false, ordering: .relaxed)
        return table.withLock { t in t.order.map { t.entries[$0]! } }
    }

    /// Restarts the forward's clock: the next op's time counts from here, not from the
    /// previous op (call it where a forward pass begins).
    public static func mark() {
        guard isEnabled else { return }
        let t = now(), thread = pthread_self()
        table.withLock { $0.marks[thread] = t }
    }

    /// A forward op has just computed its output: it took the time since the previous mark.
    static func forwardOp(_ op: String) {
        let t = now(), thread = pthread_self()
        table.withLock { table in
            guard table.depths[thread, default: 0] == 0 else { return }
            table.add("forward", op, nanoseconds: t &- (table.marks[thread] ?? table.started))
            table.marks[thread] = t
        }
    }

    /// The phase of `part` entries: time inside an op, already counted in that op's own.
    public static let insidePhase = "inside"

    /// Times `body` as a named part of the op that runs it (phase `insidePhase`), when
    /// profiling: a finer look at one op (the bf16 products' packing and blocks) that the
    /// step's shares leave out. Call it on the op's own thread, not from its workers.
    @inline(__always)
    public static func part<R>(_ name: @autoclosure () -> String, _ body: () throws -> R) rethrows -> R {
        guard isEnabled else { return try body() }
        let t0 = now()
        defer {
            let t1 = now(), key = name()
            table.withLock { $0.add(insidePhase, key, nanoseconds: t1 &- t0) }
        }
        return try body()
    }

    /// Times `body` as (phase, op) when profiling, and restarts the forward's clock after it.
    @discardableResult
    public static func measure<R>(_ phase: String, _ op: String, _ body: () throws -> R) rethrows -> R {
        guard isEnabled else { return try body() }
        let thread = pthread_self()
        table.withLock { $0.depths[thread, default: 0] += 1 }
        let t0 = now()
        defer {
            let t1 = now()
            table.withLock { table in
                table.depths[thread, default: 1] -= 1
                table.add(phase, op, nanoseconds: t1 &- t0)
                table.marks[thread] = t1
            }
        }
        return try body()
    }
}

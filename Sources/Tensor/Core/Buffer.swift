// Storage for tensors, recycled through a pool so a training step that repeats the shapes
// of the last one reuses its memory instead of going back to the allocator.
import Foundation
import Synchronization

/// A 64-byte aligned block of memory owned by one or more tensors (views share it).
/// When the last owner goes, the block returns to `BufferPool.shared`.
public final class Buffer: @unchecked Sendable {
    public let raw: UnsafeMutableRawPointer
    public let byteCount: Int
    /// Whether the memory came from the pool (and goes back to it); false for memory that
    /// belongs to someone else, such as a window shared with other processes.
    private let pooled: Bool

    /// Memory from the pool; its contents are whatever the last user left. Kernels outside
    /// this module keep their working memory in one (`withScratch` for a scope).
    public init(byteCount: Int) {
        self.byteCount = byteCount
        self.raw = BufferPool.shared.take(byteCount)
        self.pooled = true
    }

    /// Memory the caller owns and keeps alive as long as the buffer: not the pool's, and
    /// left alone when the buffer goes.
    init(external raw: UnsafeMutableRawPointer, byteCount: Int) {
        self.byteCount = byteCount
        self.raw = raw
        self.pooled = false
    }

    /// Zero-filled memory from the pool.
    convenience init(zeroedByteCount byteCount: Int) {
        self.init(byteCount: byteCount)
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: byteCount)
    }

    deinit { if pooled { BufferPool.shared.give(raw, byteCount: byteCount) } }

    @inline(__always)
    func pointer<S: TensorScalar>(_: S.Type) -> UnsafeMutablePointer<S> {
        raw.assumingMemoryBound(to: S.self)
    }
}

/// Free blocks keyed by exact byte count. Training repeats the same shapes every step, so
/// exact sizes hit. The memory the pool answers for, the blocks tensors hold and the free ones
/// together, may reach `capacityBytes` or what the steps so far need, whichever is larger:
/// for each size the most blocks of it live at once, summed over sizes (a step that frees a
/// block before it takes one of another size needs both), held to twice the most bytes live
/// at once (so a server seeing ever new sizes does not hoard them). A step that needs more
/// than `capacityBytes` thus takes nothing new from the system after the first: with a fixed
/// bound, a d12 fp32 step at B = 16 gave back about 1.5 GB every step and took it again in
/// page faults, zeroing the loss's logits gradient among them. Where a block of a new size
/// finds the pool at its bound, free blocks of the sizes used longest ago go first.
public final class BufferPool: Sendable {
    public static let shared = BufferPool()

    /// Whether each block is fenced by guard bytes, 64 of a known pattern before it and 64
    /// after, checked when the block comes back: a kernel that wrote outside its buffer stops
    /// the process there, naming the block's size and the side, instead of corrupting a
    /// neighbour unseen. `NANOCHAT_GUARD_BUFFERS=1` turns it on for the shared pool (the
    /// unit tests do); off, blocks are exactly their size.
    public let guarded: Bool
    static let guardBytes = 64

    public init(capacityBytes: Int = 8 << 30,
                guarded: Bool = ProcessInfo.processInfo.environment["NANOCHAT_GUARD_BUFFERS"] == "1") {
        state = Mutex(State(capacityBytes: capacityBytes))
        self.guarded = guarded
    }

    private struct State {
        var free: [Int: [UInt]] = [:]  // byte count -> addresses (Sendable, unlike pointers)
        var cachedBytes = 0
        var capacityBytes: Int
        var liveBytes = 0
        var peakLiveBytes = 0
        var mostLiveBytes = 0          // like peakLiveBytes, never reset
        var liveCount: [Int: Int] = [:], mostCount: [Int: Int] = [:]
        var neededBytes = 0            // the sum over sizes of size × mostCount
        var lastUse: [Int: UInt64] = [:], clock: UInt64 = 0
        var bound: Int { Swift.max(capacityBytes, Swift.min(neededBytes, 2 * mostLiveBytes)) }

        mutating func used(_ size: Int) {
            clock &+= 1
            lastUse[size] = clock
        }

        /// Takes free blocks out, of the sizes used longest ago first, until live and free
        /// bytes fit the bound; returns them.
        mutating func evictToBound() -> [UInt] {
            var out: [UInt] = []
            guard liveBytes + cachedBytes > bound else { return out }
            for size in free.keys.sorted(by: { (lastUse[$0] ?? 0, $0) < (lastUse[$1] ?? 0, $1) }) {
                while liveBytes + cachedBytes > bound, let p = free[size]?.popLast() {
                    cachedBytes -= size
                    out.append(p)
                }
                if free[size]?.isEmpty == true { free[size] = nil }
                if liveBytes + cachedBytes <= bound { break }
            }
            return out
        }
    }
    private let state: Mutex<State>

    /// Bytes currently held by tensors (not by the pool's free lists).
    public var liveBytes: Int { state.withLock { $0.liveBytes } }
    /// Bytes in the free lists, kept for the next tensors of their sizes.
    public var cachedBytes: Int { state.withLock { $0.cachedBytes } }
    /// The most bytes held by tensors at once since the last `resetPeak()`.
    public var peakLiveBytes: Int { state.withLock { $0.peakLiveBytes } }
    public func resetPeak() { state.withLock { $0.peakLiveBytes = $0.liveBytes } }

    /// The least the pool may hold, live and free together, whatever the steps need.
    public var capacityBytes: Int {
        get { state.withLock { $0.capacityBytes } }
        set {
            let evicted = state.withLock { s in
                s.capacityBytes = newValue
                return s.evictToBound()
            }
            release(evicted)
        }
    }

    /// A block of `byteCount` bytes, 64-byte aligned: a free one of that size, or a new one.
    public func take(_ byteCount: Int) -> UnsafeMutableRawPointer {
        let (cached, evicted): (UInt?, [UInt]) = state.withLock { s in
            s.liveBytes += byteCount
            s.peakLiveBytes = max(s.peakLiveBytes, s.liveBytes)
            s.mostLiveBytes = max(s.mostLiveBytes, s.liveBytes)
            let count = s.liveCount[byteCount, default: 0] + 1
            s.liveCount[byteCount] = count
            if count > s.mostCount[byteCount, default: 0] {
                s.mostCount[byteCount] = count
                s.neededBytes += byteCount
            }
            s.used(byteCount)
            if let p = s.free[byteCount]?.popLast() {
                s.cachedBytes -= byteCount
                return (p, [])
            }
            return (nil, s.evictToBound())
        }
        release(evicted)
        if let cached, let p = UnsafeMutableRawPointer(bitPattern: cached) { return p }
        guard guarded else { return UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 1), alignment: 64) }
        let g = Self.guardBytes
        let base = UnsafeMutableRawPointer.allocate(byteCount: byteCount + 2 * g, alignment: 64)
        for i in 0..<g {
            base.storeBytes(of: Self.guardByte(i), toByteOffset: i, as: UInt8.self)
            base.storeBytes(of: Self.guardByte(i), toByteOffset: g + byteCount + i, as: UInt8.self)
        }
        return base + g
    }

    /// The guard pattern's byte i: not a run of one value, so that neither zeros nor any
    /// repeated float or bf16 written over it reads as intact.
    @inline(__always)
    static func guardByte(_ i: Int) -> UInt8 { UInt8(truncatingIfNeeded: 0x5b &+ 37 &* i) }

    /// Stops the process if the guard bytes around a block of `byteCount` bytes at `pointer`
    /// were written.
    private func checkGuards(_ pointer: UnsafeMutableRawPointer, byteCount: Int) {
        func stop(_ offset: Int, _ side: String) -> Never {
            fatalError("NANOCHAT_GUARD_BUFFERS: a buffer of \(byteCount) bytes was written \(side), at byte offset \(offset): a kernel wrote outside its memory")
        }
        let g = Self.guardBytes
        for i in 0..<g {
            if pointer.load(fromByteOffset: i - g, as: UInt8.self) != Self.guardByte(i) { stop(i - g, "before its start") }
            if pointer.load(fromByteOffset: byteCount + i, as: UInt8.self) != Self.guardByte(i) { stop(byteCount + i, "past its end") }
        }
    }

    /// Gives blocks back to the system allocator.
    private func release(_ blocks: [UInt]) {
        for p in blocks {
            guard let block = UnsafeMutableRawPointer(bitPattern: p) else { continue }
            (guarded ? block - Self.guardBytes : block).deallocate()
        }
    }

    /// Takes back a block `take` gave for `byteCount` bytes.
    public func give(_ pointer: UnsafeMutableRawPointer, byteCount: Int) {
        if guarded { checkGuards(pointer, byteCount: byteCount) }
        // Moving a block from live to free keeps the sum; it exceeds the bound only after
        // `capacityBytes` was lowered.
        let keep = state.withLock { s in
            s.liveBytes -= byteCount
            s.liveCount[byteCount, default: 1] -= 1
            s.used(byteCount)
            guard s.liveBytes + s.cachedBytes + byteCount <= s.bound else { return false }
            s.free[byteCount, default: []].append(UInt(bitPattern: pointer))
            s.cachedBytes += byteCount
            return true
        }
        if !keep { release([UInt(bitPattern: pointer)]) }
    }

    /// Returns every cached block to the system allocator.
    public func trim() {
        let blocks: [UInt] = state.withLock { s in
            defer { s.free = [:]; s.cachedBytes = 0 }
            return Array(s.free.values.joined())
        }
        release(blocks)
    }
}

/// Runs `body` with `count` values of scratch memory from the pool (contents undefined),
/// returned to the pool afterwards. Kernels take their working memory here rather than from
/// the system allocator: a train step asks for the same sizes every time, and fresh memory
/// from the system is paid for in page faults on first touch, which many threads of one
/// process take in turn.
@inlinable
public func withScratch<T, R>(_: T.Type, count: Int, _ body: (UnsafeMutablePointer<T>) throws -> R) rethrows -> R {
    let scratch = Buffer(byteCount: Swift.max(count, 1) * MemoryLayout<T>.stride)
    return try withExtendedLifetime(scratch) { try body(scratch.raw.assumingMemoryBound(to: T.self)) }
}

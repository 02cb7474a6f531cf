// Storage for tensors, recycled through a pool so a training step that repeats the shapes
// of the last one reuses its memory instead of going back to the allocator.
import Synchronization

/// A 64-byte aligned block of memory owned by one or more tensors (views share it).
/// When the last owner goes, the block returns to `BufferPool.shared`.
public final class Buffer: @unchecked Sendable {
    public let raw: UnsafeMutableRawPointer
    public let byteCount: Int

    /// Memory from the pool; its contents are whatever the last user left. Kernels outside
    /// this module keep their working memory in one (`withScratch` for a scope).
    public init(byteCount: Int) {
        self.byteCount = byteCount
        self.raw = BufferPool.shared.take(byteCount)
    }

    /// Zero-filled memory from the pool.
    convenience init(zeroedByteCount byteCount: Int) {
        self.init(byteCount: byteCount)
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: byteCount)
    }

    deinit { BufferPool.shared.give(raw, byteCount: byteCount) }

    @inline(__always)
    func pointer<S: TensorScalar>(_: S.Type) -> UnsafeMutablePointer<S> {
        raw.assumingMemoryBound(to: S.self)
    }
}

/// Free blocks keyed by exact byte count. Training repeats the same shapes every step, so
/// exact sizes hit; blocks beyond `capacityBytes` go back to the system allocator.
public final class BufferPool: Sendable {
    public static let shared = BufferPool()

    private struct State {
        var free: [Int: [UInt]] = [:]  // byte count -> addresses (Sendable, unlike pointers)
        var cachedBytes = 0
        var capacityBytes = 8 << 30
        var liveBytes = 0
        var peakLiveBytes = 0
    }
    private let state = Mutex(State())

    /// Bytes currently held by tensors (not by the pool's free lists).
    public var liveBytes: Int { state.withLock { $0.liveBytes } }
    /// The most bytes held by tensors at once since the last `resetPeak()`.
    public var peakLiveBytes: Int { state.withLock { $0.peakLiveBytes } }
    public func resetPeak() { state.withLock { $0.peakLiveBytes = $0.liveBytes } }

    /// The most bytes the free lists may keep; the rest is returned to the system.
    public var capacityBytes: Int {
        get { state.withLock { $0.capacityBytes } }
        set { state.withLock { $0.capacityBytes = newValue } }
    }

    func take(_ byteCount: Int) -> UnsafeMutableRawPointer {
        let cached: UInt? = state.withLock { s in
            s.liveBytes += byteCount
            s.peakLiveBytes = max(s.peakLiveBytes, s.liveBytes)
            guard let p = s.free[byteCount]?.popLast() else { return nil }
            s.cachedBytes -= byteCount
            return p
        }
        if let cached { return UnsafeMutableRawPointer(bitPattern: cached)! }
        return UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 1), alignment: 64)
    }

    func give(_ pointer: UnsafeMutableRawPointer, byteCount: Int) {
        let keep = state.withLock { s in
            s.liveBytes -= byteCount
            guard s.cachedBytes + byteCount <= s.capacityBytes else { return false }
            s.free[byteCount, default: []].append(UInt(bitPattern: pointer))
            s.cachedBytes += byteCount
            return true
        }
        if !keep { pointer.deallocate() }
    }

    /// Returns every cached block to the system allocator.
    public func trim() {
        state.withLock { s in
            for p in s.free.values.joined() { UnsafeMutableRawPointer(bitPattern: p)!.deallocate() }
            s.free = [:]
            s.cachedBytes = 0
        }
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

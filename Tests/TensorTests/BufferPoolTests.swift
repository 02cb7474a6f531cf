// BufferPool: what it keeps between steps. Live and free bytes together may reach the larger
// of its capacity and what the steps need (per size, the most blocks live at once, summed;
// held to twice the most bytes live at once), so a step bigger than the capacity takes nothing
// new from the system after the first, even where it frees a block before taking one of
// another size; a new size at the bound makes room by giving back the sizes used longest ago.
// Each test has a pool of its own, so tests running alongside cannot move its counts.
import Testing
import Foundation
import Tensor

@Test func aStepLargerThanTheCapacityIsKeptWholeForTheNext() {
    let pool = BufferPool(capacityBytes: 1000)
    let a = pool.take(600), b = pool.take(600)
    #expect(pool.liveBytes == 1200 && pool.cachedBytes == 0)
    pool.give(a, byteCount: 600)
    pool.give(b, byteCount: 600)
    // Both kept, though 1200 is over the capacity: the step held that much at once.
    #expect(pool.liveBytes == 0 && pool.cachedBytes == 1200)
    let c = pool.take(600), d = pool.take(600)
    #expect(Set([UInt(bitPattern: c), UInt(bitPattern: d)]) == Set([UInt(bitPattern: a), UInt(bitPattern: b)]),
            "the second step reuses the first step's blocks")
    #expect(pool.cachedBytes == 0 && pool.liveBytes == 1200)
    pool.give(c, byteCount: 600)
    pool.give(d, byteCount: 600)
    #expect(pool.cachedBytes == 1200)
    pool.trim()
    #expect(pool.cachedBytes == 0 && pool.liveBytes == 0)
}

@Test func sizesTakenInTurnAreAllKept() {
    // Never more than 700 bytes live, but the step uses 600 and then 700: it needs both.
    let pool = BufferPool(capacityBytes: 500)
    let a = pool.take(600)
    pool.give(a, byteCount: 600)
    let b = pool.take(700)
    pool.give(b, byteCount: 700)
    #expect(pool.cachedBytes == 1300 && pool.liveBytes == 0)
    for _ in 0..<3 {
        let a2 = pool.take(600)
        pool.give(a2, byteCount: 600)
        let b2 = pool.take(700)
        pool.give(b2, byteCount: 700)
        #expect(a2 == a && b2 == b, "the next steps take the same blocks")
    }
    #expect(pool.cachedBytes == 1300)
    pool.trim()
}

@Test func aNewSizeAtTheBoundGivesBackTheSizesUsedLongestAgo() {
    // Sizes taken one at a time: the most live at once is 400, twice that (800) holds the
    // bound below what the four sizes together would need (1000).
    let pool = BufferPool(capacityBytes: 500)
    var blocks: [Int: UnsafeMutableRawPointer] = [:]
    for size in [100, 200, 300] {
        let p = pool.take(size)
        blocks[size] = p
        pool.give(p, byteCount: size)
    }
    #expect(pool.cachedBytes == 600)
    // 400 more: 1000 > 800, so 100 (used longest ago) goes, then 200.
    let d = pool.take(400)
    #expect(pool.liveBytes == 400 && pool.cachedBytes == 300)
    pool.give(d, byteCount: 400)
    #expect(pool.cachedBytes == 700)
    #expect(pool.take(300) == blocks[300], "the size used most recently is kept")
    pool.trim()
}

@Test func belowTheCapacityFreeBlocksOfManySizesAreKept() {
    let pool = BufferPool(capacityBytes: 10_000)
    var blocks: [(UnsafeMutableRawPointer, Int)] = []
    for size in [100, 200, 300, 400] { blocks.append((pool.take(size), size)) }
    for (p, size) in blocks { pool.give(p, byteCount: size) }
    #expect(pool.cachedBytes == 1000)
    // Other sizes fit beside them: nothing is given back.
    let e = pool.take(5000)
    #expect(pool.cachedBytes == 1000 && pool.liveBytes == 5000)
    pool.give(e, byteCount: 5000)
    #expect(pool.cachedBytes == 6000)
    // Below the capacity the steps' own need holds: 6000, so nothing goes.
    pool.capacityBytes = 0
    #expect(pool.cachedBytes == 6000)
    pool.trim()
    #expect(pool.cachedBytes == 0)
}

/// With guard bytes (every test process has them: its start-up sets NANOCHAT_GUARD_BUFFERS=1),
/// blocks keep their alignment and size, writes to a block's first and last byte pass, and a
/// write one element past a block or one byte before it stops the process when the block
/// comes back, naming its size and the offset written.
@Test func guardBytesStopAWriteOutsideABlock() async {
    #expect(BufferPool.shared.guarded)
    let pool = BufferPool(capacityBytes: 10_000, guarded: true)
    for size in [0, 1, 100, 4096] {
        let p = pool.take(size)
        #expect(UInt(bitPattern: p) % 64 == 0)
        if size > 0 {
            p.storeBytes(of: 0xff, toByteOffset: 0, as: UInt8.self)
            p.storeBytes(of: 0xff, toByteOffset: size - 1, as: UInt8.self)
        }
        pool.give(p, byteCount: size)
        #expect(pool.take(size) == p, "the block comes back intact, to be used again")
        pool.give(p, byteCount: size)
    }
    pool.trim()
    let past = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        let pool = BufferPool(capacityBytes: 10_000, guarded: true)
        let p = pool.take(100)
        p.storeBytes(of: Float(0), toByteOffset: 100, as: Float.self)
        pool.give(p, byteCount: 100)
    }
    let pastMessage = String(decoding: past?.standardErrorContent ?? [], as: UTF8.self)
    #expect(pastMessage.contains("NANOCHAT_GUARD_BUFFERS: a buffer of 100 bytes was written past its end, at byte offset 100"))
    let before = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
        let pool = BufferPool(capacityBytes: 10_000, guarded: true)
        let p = pool.take(100)
        p.storeBytes(of: UInt8(0x5b), toByteOffset: -1, as: UInt8.self)
        pool.give(p, byteCount: 100)
    }
    let beforeMessage = String(decoding: before?.standardErrorContent ?? [], as: UTF8.self)
    #expect(beforeMessage.contains("a buffer of 100 bytes was written before its start, at byte offset -1"))
}

/// A pool made without a capacity, as the shared one is, has the one docs/tensor.md gives
/// ("`capacityBytes` (8 GiB)").
@Test func theDefaultCapacityIsTheDocumented() throws {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let docs = try String(contentsOf: root.appendingPathComponent("docs/tensor.md"), encoding: .utf8)
    let stated = docs.matches(of: #/`capacityBytes` \(([0-9]+) GiB\)/#).compactMap { Int($0.output.1) }
    #expect(stated.count == 1 && stated.allSatisfy { $0 << 30 == BufferPool().capacityBytes },
            "docs/tensor.md says \(stated) GiB, a pool takes \(BufferPool().capacityBytes) bytes")
    #expect(BufferPool.shared.capacityBytes == BufferPool().capacityBytes)
}

// BufferPool: what it keeps between steps. Live and free bytes together stay within the larger
// of its capacity and the most ever live at once; a step bigger than the capacity is kept
// whole (so the next step's tensors come from the free lists, not from fresh pages), and a new
// size at the bound makes room by giving back blocks of other sizes, largest first. Each test has a pool of
// its own, so tests running alongside cannot move its counts.
import Testing
import Tensor

@Test func aStepLargerThanTheCapacityIsKeptWholeForTheNext() {
    let pool = BufferPool(capacityBytes: 1000)
    let a = pool.take(600), b = pool.take(600)
    #expect(pool.liveBytes == 1200 && pool.cachedBytes == 0)
    pool.give(a, byteCount: 600)
    pool.give(b, byteCount: 600)
    // Both kept, though 1200 is over the capacity: the tensors once held that much at once.
    #expect(pool.liveBytes == 0 && pool.cachedBytes == 1200)
    let c = pool.take(600), d = pool.take(600)
    #expect(Set([c, d]) == Set([a, b]), "the second step reuses the first step's blocks")
    #expect(pool.cachedBytes == 0 && pool.liveBytes == 1200)
    pool.give(c, byteCount: 600)
    pool.give(d, byteCount: 600)
    #expect(pool.cachedBytes == 1200)
    pool.trim()
    #expect(pool.cachedBytes == 0 && pool.liveBytes == 0)
}

@Test func aNewSizeAtTheBoundGivesBackBlocksOfOtherSizes() {
    let pool = BufferPool(capacityBytes: 1000)
    let a = pool.take(600), b = pool.take(600)
    pool.give(a, byteCount: 600)
    pool.give(b, byteCount: 600)
    // 300 new bytes with 1200 free: 1500 > the bound of 1200, so one 600-byte block goes.
    let c = pool.take(300)
    #expect(pool.liveBytes == 300 && pool.cachedBytes == 600)
    // Within the bound again: a block of the kept size is reused, none given back.
    let d = pool.take(600)
    #expect(d == a || d == b)
    #expect(pool.liveBytes == 900 && pool.cachedBytes == 0)
    pool.give(c, byteCount: 300)
    pool.give(d, byteCount: 600)
    #expect(pool.liveBytes == 0 && pool.cachedBytes == 900)
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
    // Lowering the capacity gives back free blocks, largest first, until the bound holds: the
    // most ever live (5000) is now the bound.
    pool.capacityBytes = 0
    #expect(pool.cachedBytes == 1000)
    pool.capacityBytes = 4700
    #expect(pool.cachedBytes == 1000)
    pool.trim()
}

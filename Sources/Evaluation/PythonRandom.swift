// CPython's `random.Random` for the few calls evaluations make: seeding from an integer,
// `shuffle` and `sample`. nanochat's CORE evaluation shuffles each task with
// `random.Random(1337)` and draws the few-shot examples of item i with
// `random.Random(1234 + i).sample(...)`; to show the same examples for the same item, this
// generator must give CPython's numbers exactly: the Mersenne Twister (MT19937) seeded by
// `init_by_array` over the seed's 32-bit words, `getrandbits`, and rejection sampling for a
// number below n (`_randbelow_with_getrandbits`).
import Foundation

public struct PythonRandom: Sendable {
    private var state = [UInt32](repeating: 0, count: 624)
    private var index = 624

    /// `random.Random(seed)`: the generator CPython makes from a non-negative integer.
    public init(seed: UInt64) {
        // The seed's 32-bit words, least significant first (at least one word).
        var key: [UInt32] = [UInt32(truncatingIfNeeded: seed)]
        if seed >> 32 != 0 { key.append(UInt32(truncatingIfNeeded: seed >> 32)) }
        seedByArray(key)
    }

    private mutating func seedBy(_ s: UInt32) {
        state[0] = s
        for i in 1..<624 {
            state[i] = 1_812_433_253 &* (state[i - 1] ^ (state[i - 1] >> 30)) &+ UInt32(i)
        }
        index = 624
    }

    private mutating func seedByArray(_ key: [UInt32]) {
        seedBy(19_650_218)
        var i = 1, j = 0
        for _ in 0..<Swift.max(624, key.count) {
            state[i] = (state[i] ^ ((state[i - 1] ^ (state[i - 1] >> 30)) &* 1_664_525)) &+ key[j] &+ UInt32(j)
            i += 1; j += 1
            if i >= 624 { state[0] = state[623]; i = 1 }
            if j >= key.count { j = 0 }
        }
        for _ in 0..<623 {
            state[i] = (state[i] ^ ((state[i - 1] ^ (state[i - 1] >> 30)) &* 1_566_083_941)) &- UInt32(i)
            i += 1
            if i >= 624 { state[0] = state[623]; i = 1 }
        }
        state[0] = 0x8000_0000
    }

    /// The next 32 random bits (`genrand_uint32`).
    public mutating func next32() -> UInt32 {
        if index >= 624 {
            for k in 0..<624 {
                let y = (state[k] & 0x8000_0000) | (state[(k + 1) % 624] & 0x7fff_ffff)
                state[k] = state[(k + 397) % 624] ^ (y >> 1) ^ (y & 1 == 0 ? 0 : 0x9908_b0df)
            }
            index = 0
        }
        var y = state[index]
        index += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9d2c_5680
        y ^= (y << 15) & 0xefc6_0000
        y ^= y >> 18
        return y
    }

    /// `getrandbits(k)` for k in 0...64: words of 32 bits, the first the least significant,
    /// the last shifted down to what is left of k.
    public mutating func bits(_ k: Int) -> UInt64 {
        precondition((0...64).contains(k), "getrandbits of 0...64 bits")
        if k == 0 { return 0 }
        if k <= 32 { return UInt64(next32() >> (32 - k)) }
        let low = UInt64(next32())
        return low | (UInt64(next32() >> (64 - k)) << 32)
    }

    /// A number in 0..<n (n ≥ 1), as `_randbelow` draws it: k = n's bit length, draws of k
    /// bits until one is below n.
    public mutating func below(_ n: Int) -> Int {
        precondition(n >= 1, "below(n) needs n ≥ 1")
        let k = Int.bitWidth - n.leadingZeroBitCount
        var r = bits(k)
        while r >= UInt64(n) { r = bits(k) }
        return Int(r)
    }

    /// `shuffle(x)` in place: from the last position down, a swap with one at or before it.
    public mutating func shuffle<T>(_ x: inout [T]) {
        guard x.count > 1 else { return }
        for i in stride(from: x.count - 1, through: 1, by: -1) {
            x.swapAt(i, below(i + 1))
        }
    }

    /// `sample(population, k)`: k distinct positions of the population, in the order drawn.
    /// CPython draws from a shrinking pool when the population is small against k, else
    /// redraws positions already taken; both are followed, since they give different picks.
    public mutating func sample<T>(_ population: [T], _ k: Int) -> [T] {
        let n = population.count
        precondition(0 <= k && k <= n, "sample larger than the population")
        var setSize = 21
        if k > 5 { setSize += Int(pow(4.0, ceil(log(Double(k * 3)) / log(4.0)))) }
        var result: [T] = []
        result.reserveCapacity(k)
        if n <= setSize {
            var pool = population
            for i in 0..<k {
                let j = below(n - i)
                result.append(pool[j])
                pool[j] = pool[n - i - 1]
            }
        } else {
            var selected = Set<Int>()
            for _ in 0..<k {
                var j = below(n)
                while selected.contains(j) { j = below(n) }
                selected.insert(j)
                result.append(population[j])
            }
        }
        return result
    }
}

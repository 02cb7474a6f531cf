// NumPy's default generator, for the one call evaluations need from it: Hugging Face
// `datasets` shuffles a dataset with `Dataset.shuffle(seed=s)`, which takes the permutation
// `np.random.default_rng(s).permutation(len(dataset))`. nanochat's chat tasks (ARC, MMLU,
// GSM8K, HumanEval) shuffle their test splits with seed 42 and evaluate them in that order,
// so a run limited to the first N problems evaluates the same N only with the same
// permutation. Three pieces, each as NumPy defines it:
//
// - `SeedSequence`: the integer seed's 32-bit words hashed into a pool of four words, from
//   which the generator's 128-bit state and increment are drawn.
// - `PCG64`: a 128-bit linear congruential generator whose 64-bit outputs are the high and
//   low halves xor-ed and rotated (XSL-RR); 32-bit draws use each 64-bit output twice, low
//   half first.
// - `permutation`: 0..<n shuffled from the top down, each index swapped with one drawn below
//   or at it by masked rejection (`random_interval`).

/// NumPy's `SeedSequence` for an integer seed and no spawn key.
public struct NumpySeedSequence: Sendable {
    /// The mixed pool of four 32-bit words.
    public let pool: [UInt32]

    static let initA: UInt32 = 0x43b0_d7e5, multA: UInt32 = 0x931e_8875
    static let initB: UInt32 = 0x8b51_f9dd, multB: UInt32 = 0x58f3_8ded
    static let mixL: UInt32 = 0xca01_f9dd, mixR: UInt32 = 0x4973_f715

    public init(seed: UInt64) {
        // The seed as 32-bit words, least significant first (0 is one word).
        var entropy: [UInt32] = [UInt32(truncatingIfNeeded: seed)]
        if seed >> 32 != 0 { entropy.append(UInt32(truncatingIfNeeded: seed >> 32)) }
        var hashConst = Self.initA
        func hashmix(_ value: UInt32) -> UInt32 {
            var v = value ^ hashConst
            hashConst = hashConst &* Self.multA
            v = v &* hashConst
            return v ^ (v >> 16)
        }
        func mix(_ x: UInt32, _ y: UInt32) -> UInt32 {
            let r = Self.mixL &* x &- Self.mixR &* y
            return r ^ (r >> 16)
        }
        var mixer = [UInt32](repeating: 0, count: 4)
        for i in 0..<4 { mixer[i] = hashmix(i < entropy.count ? entropy[i] : 0) }
        for src in 0..<4 {
            for dst in 0..<4 where src != dst { mixer[dst] = mix(mixer[dst], hashmix(mixer[src])) }
        }
        // (NumPy mixes words past the fourth in here too; a 64-bit seed has at most two.)
        pool = mixer
    }

    /// `generate_state(n, np.uint64)`: n 64-bit words, each two 32-bit draws (low first).
    public func state64(_ n: Int) -> [UInt64] {
        var hashConst = Self.initB
        var words: [UInt32] = []
        for i in 0..<(2 * n) {
            var v = pool[i % 4] ^ hashConst
            hashConst = hashConst &* Self.multB
            v = v &* hashConst
            words.append(v ^ (v >> 16))
        }
        return (0..<n).map { UInt64(words[2 * $0]) | UInt64(words[2 * $0 + 1]) << 32 }
    }
}

/// NumPy's `PCG64` bit generator (`np.random.default_rng(seed)`'s).
public struct NumpyPCG64: Sendable {
    private var state: UInt128 = 0
    private let increment: UInt128
    /// The high half of the last 64-bit output, kept for the next 32-bit draw.
    private var spare: UInt32? = nil

    static let multiplier = UInt128(2_549_297_995_355_413_924) << 64 | UInt128(4_865_540_595_714_422_341)

    public init(seed: UInt64) {
        let words = NumpySeedSequence(seed: seed).state64(4)
        let initial = UInt128(words[0]) << 64 | UInt128(words[1])
        let sequence = UInt128(words[2]) << 64 | UInt128(words[3])
        increment = sequence << 1 | 1
        step()
        state &+= initial
        step()
    }

    private mutating func step() { state = state &* Self.multiplier &+ increment }

    /// The next 64-bit output.
    public mutating func next64() -> UInt64 {
        step()
        let folded = UInt64(truncatingIfNeeded: state >> 64) ^ UInt64(truncatingIfNeeded: state)
        let rotation = UInt64(truncatingIfNeeded: state >> 122)
        return folded >> rotation | folded << ((64 &- rotation) & 63)
    }

    /// The next 32-bit output: the low half of a fresh 64-bit one, then its high half.
    public mutating func next32() -> UInt32 {
        if let s = spare { spare = nil; return s }
        let v = next64()
        spare = UInt32(truncatingIfNeeded: v >> 32)
        return UInt32(truncatingIfNeeded: v)
    }

    /// A number in 0...max by masked rejection, as NumPy's `random_interval`.
    public mutating func interval(_ max: UInt64) -> UInt64 {
        guard max > 0 else { return 0 }
        var mask = max
        for shift in [1, 2, 4, 8, 16, 32] as [UInt64] { mask |= mask >> shift }
        while true {
            let value = max <= 0xffff_ffff ? UInt64(next32()) & mask : next64() & mask
            if value <= max { return value }
        }
    }

    /// `Generator.permutation(n)`: 0..<n shuffled.
    public mutating func permutation(_ n: Int) -> [Int] {
        var order = Array(0..<n)
        var i = n - 1
        while i >= 1 {
            let j = Int(interval(UInt64(i)))
            order.swapAt(i, j)
            i -= 1
        }
        return order
    }
}

/// The order Hugging Face `datasets` gives `count` rows with `Dataset.shuffle(seed:)`: row
/// `order[i]` of the file is row i of the shuffled dataset.
public func huggingFaceShuffleOrder(count: Int, seed: UInt64) -> [Int] {
    var generator = NumpyPCG64(seed: seed)
    return generator.permutation(count)
}
